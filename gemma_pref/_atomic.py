# SPDX-License-Identifier: Apache-2.0
"""Write a file all at once: a temporary file beside it, then a rename."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "default_file_mode"]


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # elsewhere it can only be read by setting it
    os.umask(current)
    return current


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def _mode_for(path: Path) -> int:
    """What ``open(path, "w")`` would leave: an existing file's mode, else
    :func:`default_file_mode`."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return default_file_mode()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` on success.

    Readers see the old file or the new one, never a partial one; on an error
    (or an interrupt) the temporary file is removed and ``path`` is untouched.
    The new file gets the permissions of a plain ``open(path, "w")`` (those of
    the file it replaces, else 0o666 less the umask), not ``mkstemp``'s
    owner-only 0o600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
