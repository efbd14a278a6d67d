# SPDX-License-Identifier: Apache-2.0
"""Preference rows as Ray Datasets of arena rows, read by the in-process rule."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data._cells import where
from ..data.schema import ARENA_COLUMNS
from ..exceptions import ArenaFormatError
from ._cluster import DEFAULT_BATCH_SIZE, require_ray

__all__ = ["read_arena_dataset", "read_preferences_dataset"]


def _listing(items: list[str]) -> set[str]:
    suffixes: set[str] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            suffixes |= {
                f.suffix.lower()
                for f in path.iterdir()
                if f.is_file() and not f.name.startswith((".", "_"))
            }
        elif path.is_file():
            suffixes.add(path.suffix.lower())
        else:
            raise FileNotFoundError(f"arena input {item!r} does not exist")
    return suffixes


def read_arena_dataset(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: str = "auto",
    cell_format: str = "auto",
    random_state: Any = 0,
) -> Any:
    """Read preference rows as a Ray Dataset of arena rows: CSV or Parquet shards.

    Each Ray batch goes through :func:`~gemma_pref.read_preferences` with
    ``format`` and ``cell_format``, so the rows reach the actors as the
    in-process path reads them (:func:`read_preferences_dataset`). CSV cells
    may hold newlines (the Kaggle files do); text columns are read as
    strings, never type-inferred, and only an empty field is missing
    (``NA`` or ``null`` are text).

    Parameters
    ----------
    paths : path or list of paths
        Local or shared-filesystem paths: files, or directories of ``.csv`` or
        ``.parquet`` shards (names starting with ``.`` or ``_`` are skipped).
    format, cell_format, random_state
        As for :func:`~gemma_pref.read_preferences`.

    Returns
    -------
    dataset : ray.data.Dataset
        Arena rows: ``id`` (where the data has ids), ``prompt``,
        ``response_a``, ``response_b`` as JSON lists of turns, labels and the
        other columns, as :func:`~gemma_pref.read_preferences` returns them.
    """
    ray = require_ray()
    if isinstance(paths, (str, os.PathLike)):
        items = [os.fspath(paths)]
    else:
        items = [os.fspath(p) for p in paths]
    if not items:
        raise ValueError("read_arena_dataset needs at least one path")
    suffixes = _listing(items)
    if suffixes == {".parquet"}:
        raw = ray.data.read_parquet(items, file_extensions=["parquet"])
    elif suffixes == {".csv"}:
        import pyarrow as pa
        from pyarrow import csv

        strings = {c: pa.string() for c in _TEXT_COLUMNS}
        raw = ray.data.read_csv(
            items,
            file_extensions=["csv"],
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types=strings,
                # as the in-process reader: only an empty field is missing
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
    else:
        raise ValueError(
            f"arena input {items!r} holds {sorted(suffixes) or 'no'} files; expected CSV "
            "(.csv) or Parquet (.parquet) files, not both"
        )
    return read_preferences_dataset(
        raw, format=format, cell_format=cell_format, random_state=random_state
    )


#: Text columns of every format, read from CSV as strings.
_TEXT_COLUMNS = (
    *ARENA_COLUMNS,
    "model_a",
    "model_b",
    "chosen",
    "rejected",
    "conversation_a",
    "conversation_b",
)


def _read_batch(
    batch: Any, *, format: str, cell_format: str, random_state: Any, expected: Any
) -> Any:
    """``read_preferences`` of one Ray batch, checked against the first batch's reading."""
    from ..data.readers import FORMAT_ATTR, SOURCE_CELLS_ATTR, read_preferences

    frame, _ = read_preferences(batch, format, cell_format=cell_format, random_state=random_state)
    got = (frame.attrs[FORMAT_ATTR], frame.attrs[SOURCE_CELLS_ATTR])
    if got != expected:
        first = where(batch, 0) if len(batch) else "an empty batch"
        raise ArenaFormatError(
            f"the rows from {first} on read as the {got[0]!r} format with cells "
            f"{got[1]}, the dataset's first rows as {expected[0]!r} with {expected[1]}: "
            "one rule must read the whole dataset; pass format= and cell_format= (CLI: "
            "--format, --cell-format) to settle it",
            column=next(iter(got[1]), ""),
            row=batch.index[0] if len(batch) else None,
        )
    frame.attrs = {}  # Arrow blocks carry no attrs: the cells are JSON lists now
    return frame.reset_index(drop=True)


def read_preferences_dataset(
    dataset: Any,
    *,
    format: str = "auto",
    cell_format: str = "auto",
    random_state: Any = 0,
) -> Any:
    """Map a Ray Dataset of preference rows through :func:`~gemma_pref.read_preferences`.

    The first rows are read in the driver, so a malformed file fails before
    any actor starts and ``"auto"`` settles on a format and a cell rule; each
    batch is then read the same way in Ray tasks and must come to the same
    format and rule: a batch that reads otherwise (a file that mixes
    encodings, a shard of another format) fails the job, naming its first row
    and the parameters that settle it.

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows in any format :func:`~gemma_pref.read_preferences` reads.
    format, cell_format, random_state
        As for :func:`~gemma_pref.read_preferences` (``random_state`` seeds
        the A/B order of chosen/rejected pairs of each batch).

    Returns
    -------
    dataset : ray.data.Dataset
        Lazy arena rows.
    """
    from ..data.readers import FORMAT_ATTR, SOURCE_CELLS_ATTR, read_preferences

    first = dataset.take_batch(DEFAULT_BATCH_SIZE, batch_format="pandas")
    frame, _ = read_preferences(first, format, cell_format=cell_format, random_state=random_state)
    expected = (frame.attrs[FORMAT_ATTR], frame.attrs[SOURCE_CELLS_ATTR])
    out = dataset.map_batches(
        _read_batch,
        fn_kwargs={
            "format": format,
            "cell_format": cell_format,
            "random_state": random_state,
            "expected": expected,
        },
        batch_format="pandas",
    )
    out.context.raise_original_map_exception = True  # an ArenaFormatError stays one
    return out
