# SPDX-License-Identifier: Apache-2.0
"""The output policy: an output is new, or with ``--overwrite`` gemma-pref's own
output of its kind; never one of the command's inputs, never a file of the
user's; written to a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from ._common import CLIError

#: What each kind of output is, for the messages of :func:`check_output`.
_KINDS = {
    "joblib": "a pipeline file gemma-pref wrote",
    "submission": "a submission gemma-pref wrote (its header is not a submission's)",
    "cv": "a cv report gemma-pref wrote",
    "npy": "a NumPy .npy file",
    "png": "a PNG image",
}


def _inputs(args: argparse.Namespace) -> list[Path]:
    """The files and folders the command reads."""
    names = ("train", "test", "input", "pipeline", "sample_submission")
    return [Path(v) for v in (getattr(args, n, None) for n in names) if v]


def _not_an_input(path: Path, args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs, whatever the flags."""
    target = path.resolve()
    for source in _inputs(args):
        if source.exists() and source.resolve() == target:
            raise CLIError(
                f"the output {str(path)!r} is the command's input {str(source)!r}: it is "
                "never replaced; choose another output path"
            )


def check_output(
    path: str | os.PathLike[str], overwrite: bool, kind: str, args: argparse.Namespace
) -> Path:
    """The output ``path``: new, or with ``--overwrite`` the library's own
    output of ``kind`` (never a file of the user's, never an input)."""
    from .._ownership import is_own_output

    path = Path(path)
    _not_an_input(path, args)
    if path.exists() and not overwrite:
        raise CLIError(f"{str(path)!r} already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise CLIError(f"{str(path)!r} is a directory; expected a file path")
    if path.exists() and not is_own_output(path, kind):
        raise CLIError(
            f"{str(path)!r} exists and is not {_KINDS[kind]}: --overwrite replaces only "
            "what gemma-pref wrote; choose another output path"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"output directory {str(parent)!r} is not writable")
    return path


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``; no partial file on error."""
    with atomic_path(path) as tmp:
        write(tmp)


def ray_output(path: str, overwrite: bool, args: argparse.Namespace) -> Path:
    from .._ownership import foreign_files
    from ..distributed._output import own_parquet_files

    out = Path(path)
    if out.suffix in {".npy", ".csv"}:
        raise CLIError(
            f"with --engine ray the output is a directory of Parquet shards, not {str(out)!r}"
        )
    _not_an_input(out, args)
    if out.exists() and not overwrite:
        raise CLIError(f"{str(out)!r} already exists; pass --overwrite to replace it")
    if out.exists() or out.is_symlink():  # the rule of write_parquet, before any work
        own = own_parquet_files(out) if out.is_dir() else None
        if own is None:
            raise CLIError(
                f"{str(out)!r} exists and is not an output gemma-pref wrote (no _SUCCESS of "
                "its own): --overwrite replaces only what gemma-pref wrote; choose another output"
            )
        extra = foreign_files(out, own)
        if extra:
            raise CLIError(
                f"{str(out)!r} holds files gemma-pref did not write ({', '.join(extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}): --overwrite never deletes them; move "
                "them away or choose another output"
            )
    return out
