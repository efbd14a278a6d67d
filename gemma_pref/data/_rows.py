# SPDX-License-Identifier: Apache-2.0
"""The arena frame every format's reader returns, and how a row is named (no torch).

Each format's reader (``._arena``, ``._conversations``, ``._pairs``) turns its
cells into JSON lists of turns; :func:`arena_frame` makes them the frame the
Kaggle LMSYS files hold: row ids (``id``, else the format's own id column),
model names, the three text columns, the one-hot labels, then every other
column of the source. :func:`~gemma_pref.data.readers.read_preferences`
dispatches to the readers and marks the frame.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ._cells import where
from .io import labels_from_winner
from .schema import ARENA_COLUMNS, WINNER_COLUMNS

__all__ = ["Where", "arena_frame", "locate", "read_labels", "row_ids", "turns_cell"]


class Where(str):
    """``"row <label> (id <id>)"`` for messages, carrying the row label itself."""

    label: Any


def locate(frame: pd.DataFrame, i: int) -> Where:
    """:func:`~gemma_pref.data._cells.where` of position ``i``, carrying the row label."""
    text = Where(where(frame, i))
    text.label = frame.index[i]
    return text


def turns_cell(turns: list[str]) -> str:
    """The arena cell of ``turns``: a JSON list of strings, non-ASCII kept as written."""
    return json.dumps(turns, ensure_ascii=False)


def read_labels(frame: pd.DataFrame) -> np.ndarray | None:
    """Labels from ``winner`` or the one-hot columns; ``None`` without either."""
    columns = set(map(str, frame.columns))
    if "winner_model_a" in columns or "winner_model_b" in columns:
        if not {"winner_model_a", "winner_model_b"} <= columns:
            raise ValueError(
                "Missing label column: expected both winner_model_a and winner_model_b "
                f"(and winner_tie for a task with ties); got columns {sorted(columns)}."
            )
        return labels_from_winner(frame)
    if "winner" in columns:
        return labels_from_winner(frame)
    return None


def row_ids(frame: pd.DataFrame, id_column: str | None) -> np.ndarray | None:
    """The rows' ids: ``id``, else the format's own ``id_column``; ``None`` without either."""
    for name in ("id", id_column):
        if name is not None and name in frame.columns:
            column = frame[name]
            if isinstance(column, pd.DataFrame):
                raise ValueError(f"Duplicate column {name!r}: expected one column of row ids.")
            if column.isna().any():
                i = int(np.flatnonzero(column.isna().to_numpy())[0])
                raise ValueError(
                    f"{name} at {locate(frame, i)}: the row has no id; every row of a file "
                    "with ids needs one."
                )
            return column.to_numpy()
    return None


def arena_frame(
    frame: pd.DataFrame,
    texts: dict[str, list[str]],
    y: np.ndarray | None,
    dropped: set[str],
    three_classes: bool,
    id_column: str | None,
) -> pd.DataFrame:
    """Columns in the order of the Kaggle files, then the other columns kept.

    ``id_column`` is the format's own id column
    (:data:`~gemma_pref.data.readers.ID_COLUMNS`), read when ``frame`` has no ``id``.
    """
    data: dict[str, Any] = {}
    ids = row_ids(frame, id_column)
    if ids is not None:
        data["id"] = ids
    for name in ("model_a", "model_b"):
        if name in frame.columns:
            data[name] = frame[name].to_numpy()
    for name in ARENA_COLUMNS:
        data[name] = np.asarray(texts[name], dtype=object)
    if y is not None:
        names = WINNER_COLUMNS if three_classes else WINNER_COLUMNS[:2]
        for k, name in enumerate(names):
            data[name] = (y == k).astype(np.int64)
    skip = {"id", "model_a", "model_b", *ARENA_COLUMNS, *WINNER_COLUMNS, "winner", *dropped}
    id_source = id_column
    if "id" not in frame.columns and id_source is not None:
        skip.add(id_source)  # it became ``id``
    for name in frame.columns:
        if str(name) not in skip and name not in data:
            data[name] = frame[name].to_numpy()
    return pd.DataFrame(data, index=frame.index)
