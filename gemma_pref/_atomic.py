# SPDX-License-Identifier: Apache-2.0
"""Write a file all at once: a temporary file beside it, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]

# read once: os.umask can only be read by setting it
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` on success.

    Readers see the old file or the new one, never a partial one; on an error
    (or an interrupt) the temporary file is removed and ``path`` is untouched.
    The new file gets the permissions of a plain ``open(path, "w")`` (0o666
    less the umask), not ``mkstemp``'s owner-only 0o600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
