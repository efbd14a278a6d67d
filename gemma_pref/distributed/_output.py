# SPDX-License-Identifier: Apache-2.0
"""Parquet output of a Ray job: written atomically, with a ``_SUCCESS`` manifest."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from .._ownership import foreign_files, refuse_replacing

__all__ = ["PARQUET_FORMAT", "SUCCESS_FILE", "own_parquet_files", "write_parquet"]

#: Written last into an output directory of :func:`write_parquet`.
SUCCESS_FILE = "_SUCCESS"
#: The ``format`` of the ``_SUCCESS`` manifest :func:`write_parquet` writes.
PARQUET_FORMAT = "gemma-pref-parquet"


def own_parquet_files(folder: Path) -> set[str] | None:
    """The files a :func:`write_parquet` output says it holds (its ``_SUCCESS``
    manifest), or ``None`` when ``folder`` is not one."""
    try:
        marker = json.loads((folder / SUCCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if marker.get("format") == PARQUET_FORMAT and isinstance(marker.get("files"), list):
        return {SUCCESS_FILE, *map(str, marker["files"])}
    if {"rows", "files", "path"} <= set(marker) and isinstance(marker["files"], int):
        # an earlier release's marker: it counted its shards, all of them .parquet
        shards = {p.name for p in folder.glob("*.parquet")}
        return {SUCCESS_FILE, *shards} if len(shards) == marker["files"] else None
    return None


def write_parquet(
    dataset: Any, path: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Any]:
    """Run ``dataset`` and write it as Parquet shards plus a ``_SUCCESS`` marker.

    The shards go to a hidden sibling directory first; only when every shard
    is written does the marker go in and the directory take its name, so a
    failed or interrupted job never leaves a directory that looks complete,
    and a rerun never mixes old and new shards.

    Parameters
    ----------
    dataset : ray.data.Dataset
    path : path
        The output directory, on a filesystem every Ray node writes to (local
        for a single machine, shared storage for a cluster).
    overwrite : bool, default=False
        Replace an existing output directory, but only one this function
        wrote: its ``_SUCCESS`` is the library's manifest and it holds nothing
        but the files that manifest lists. A folder of your own Parquet files
        (your input dataset, say), a folder with anything else in it, or a
        file is never replaced.

    Returns
    -------
    summary : dict
        ``format``, ``rows``, ``files`` (the shard names), ``path`` and
        ``written``, as written into the marker.
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{str(out)!r} already exists; pass overwrite=True to replace it")
        if not out.is_dir():
            raise FileExistsError(f"{str(out)!r} is a file; expected an output directory")
        own = own_parquet_files(out)
        if own is None:
            raise refuse_replacing(
                out,
                "an output of gemma_pref.distributed.write_parquet",
                f"no {SUCCESS_FILE} of its own",
            )
        foreign = foreign_files(out, own)
        if foreign:
            raise refuse_replacing(
                out,
                "only what write_parquet wrote",
                f"it also holds {foreign[:5]}{' ...' if len(foreign) > 5 else ''}",
            )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory's parent {str(parent)!r} does not exist")
    token = uuid.uuid4().hex[:12]
    tmp = parent / f".{out.name}.incomplete-{token}"
    try:
        dataset.write_parquet(str(tmp))
        import pyarrow.parquet as pq

        shards = sorted(tmp.glob("*.parquet"))
        summary = {
            "format": PARQUET_FORMAT,
            "rows": int(sum(pq.ParquetFile(f).metadata.num_rows for f in shards)),
            "files": [f.name for f in shards],
            "path": str(out),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / SUCCESS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        if out.exists():
            old = parent / f".{out.name}.replaced-{token}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
