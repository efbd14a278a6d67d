# SPDX-License-Identifier: Apache-2.0
"""Whether a path holds an output gemma-pref wrote, without running anything in it.

``overwrite`` (``--overwrite``) replaces only what the library wrote itself: a
joblib file with gemma-pref's envelope, a ``save_safe`` directory holding only
the files its manifest lists, a Parquet output directory holding only the
shards its ``_SUCCESS`` manifest lists, a submission CSV, a ``cv`` report, an
``.npy`` matrix, a PNG plot. Nothing here unpickles or imports what it reads.
"""

from __future__ import annotations

import json
import pickletools
import zlib
from pathlib import Path

__all__ = [
    "JOBLIB_FORMAT",
    "SUBMISSION_HEADERS",
    "foreign_files",
    "is_own_joblib",
    "joblib_writer_version",
    "is_own_output",
    "refuse_replacing",
]

#: The ``format`` of gemma-pref's joblib envelope (:func:`gemma_pref.save`).
JOBLIB_FORMAT = "gemma-pref-joblib"
#: The header lines of the submission files gemma-pref writes.
SUBMISSION_HEADERS = ("id,winner_model_a,winner_model_b,winner_tie", "id,winner")
_PNG = b"\x89PNG\r\n\x1a\n"
_HEAD = 1 << 16


def _pickle_head(path: Path) -> bytes:
    """The first bytes of the pickle in a joblib file (zlib, gzip or none)."""
    with open(path, "rb") as f:
        raw = f.read(_HEAD)
    for wbits in (zlib.MAX_WBITS, 16 + zlib.MAX_WBITS):  # zlib, gzip
        try:
            return zlib.decompressobj(wbits).decompress(raw, _HEAD)
        except zlib.error:
            continue
    return raw


def _envelope_strings(path: Path, limit: int) -> list[str]:
    """The first ``limit`` string values of the pickle in a joblib file.

    The pickle's opcodes are read (``pickletools``), never executed.
    """
    head = _pickle_head(path)
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(head):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                strings.append(arg)
            if len(strings) >= limit:
                break
    except Exception:  # a truncated or foreign stream: judge what was read
        pass
    return strings


def is_own_joblib(path: str | Path) -> bool:
    """Whether ``path`` is a joblib file written by :func:`gemma_pref.save`.

    The envelope's first string values name its format (read, never executed).
    """
    try:
        strings = _envelope_strings(Path(path), 4)
    except OSError:
        return False
    return "format" in strings and JOBLIB_FORMAT in strings


def joblib_writer_version(path: str | Path) -> str | None:
    """The gemma-pref version recorded by the :func:`gemma_pref.save` file ``path``.

    Read from the envelope's strings (``format``, its name, ``format_version``,
    ``versions``, then ``gemma_pref`` and its version), never executed; ``None``
    for another file or one that does not say.
    """
    try:
        strings = _envelope_strings(Path(path), 6)
    except OSError:
        return None
    if JOBLIB_FORMAT not in strings or "gemma_pref" not in strings[:-1]:
        return None
    return strings[strings.index("gemma_pref") + 1]


def is_own_output(path: str | Path, kind: str) -> bool:
    """Whether the file at ``path`` is one gemma-pref writes as ``kind``:
    ``"joblib"``, ``"submission"``, ``"cv"``, ``"npy"`` or ``"png"``."""
    path = Path(path)
    if not path.is_file():
        return False
    if kind == "joblib":
        return is_own_joblib(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return False
    if kind == "png":
        return head.startswith(_PNG)
    if kind == "npy":
        return head.startswith(b"\x93NUMPY")
    if kind == "submission":
        first = head.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        return first in SUBMISSION_HEADERS
    if kind == "cv":
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(report, dict) and {"log_loss", "oof", "settings"} <= set(report)
    raise ValueError(f"unknown output kind {kind!r}")


def foreign_files(folder: Path, own: set[str]) -> list[str]:
    """Names in ``folder`` that are not among ``own``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.name not in own)


def refuse_replacing(path: Path, what: str, why: str) -> FileExistsError:
    """The error for an existing path that overwrite may not replace."""
    return FileExistsError(
        f"{str(path)!r} exists and is not {what} ({why}); it is never replaced, even "
        "with overwrite: choose another path, or move it away yourself."
    )
