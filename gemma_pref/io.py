# SPDX-License-Identifier: Apache-2.0
"""Reading Kaggle arena files, labels, and writing submissions (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import atomic_path
from .schema import ARENA_COLUMNS, CLASS_NAMES, WINNER_COLUMNS

__all__ = [
    "CLASS_NAMES",
    "WINNER_COLUMNS",
    "labels_from_winner",
    "load_arena_csv",
    "write_submission",
]


def labels_from_winner(df: pd.DataFrame) -> np.ndarray:
    """Turn the one-hot winner columns into class labels.

    Parameters
    ----------
    df : pandas.DataFrame
        Holds ``winner_model_a``, ``winner_model_b`` and ``winner_tie``, each 0
        or 1 with exactly one 1 per row.

    Returns
    -------
    y : ndarray of shape (n_rows,), dtype=int64
        0 when model A wins, 1 when model B wins, 2 for a tie.

    Raises
    ------
    ValueError
        When a column is missing, or a row is not one-hot (naming the row).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"winner_model_a": [1, 0, 0], "winner_model_b": [0, 1, 0],
    ...                    "winner_tie": [0, 0, 1]})
    >>> labels_from_winner(df)
    array([0, 1, 2])
    """
    missing = [c for c in WINNER_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"Missing label column(s) {', '.join(map(repr, missing))}; expected "
            f"{', '.join(WINNER_COLUMNS)} (one-hot, one 1 per row)."
        )
    onehot = df[list(WINNER_COLUMNS)]
    values = onehot.to_numpy()
    valid = np.isin(values, (0, 1)) & ~pd.isna(onehot).to_numpy()
    ok = valid.all(axis=1) & (np.where(valid, values, 0).sum(axis=1) == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"winner columns at row {df.index[i]!r}: expected exactly one 1 among "
            f"{', '.join(WINNER_COLUMNS)}, got {onehot.iloc[i].tolist()}"
        )
    return np.argmax(values.astype(np.int64), axis=1).astype(np.int64)


def load_arena_csv(path: str | os.PathLike[str], *, require_labels: bool = False) -> pd.DataFrame:
    """Read a Kaggle arena CSV and check its columns.

    Parameters
    ----------
    path : str or os.PathLike
        ``train.csv`` or ``test.csv`` of the competition, or a file like them.
    require_labels : bool, default=False
        Also require the three ``winner_*`` columns.

    Returns
    -------
    df : pandas.DataFrame

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When a required column is missing (naming it and the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arena CSV not found: {str(path)!r}")
    df = pd.read_csv(path)
    required = ["id", *ARENA_COLUMNS]
    if require_labels:
        required += list(WINNER_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks column(s) {', '.join(map(repr, missing))}; "
            f"expected {', '.join(required)}; found {', '.join(map(str, df.columns))}."
        )
    return df


def write_submission(
    ids: Sequence[Any] | np.ndarray | pd.Series,
    proba: Any,
    path: str | os.PathLike[str],
) -> Path:
    """Write a Kaggle submission: ``id, winner_model_a, winner_model_b, winner_tie``.

    Rows are renormalised to sum to 1. The file is written to a temporary name
    and renamed, so an interrupted run never leaves a half-written file.

    Parameters
    ----------
    ids : sequence
        The ``id`` column of the test rows.
    proba : array-like of shape (n_rows, 3)
        Class probabilities in the order model_a, model_b, tie (the order of
        ``predict_proba`` for labels 0, 1, 2).
    path : str or os.PathLike
        Output CSV path.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> out = write_submission([7, 8], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
    ...                        tempfile.mkdtemp() + "/submission.csv")
    >>> pd.read_csv(out).columns.tolist()
    ['id', 'winner_model_a', 'winner_model_b', 'winner_tie']
    """
    proba = np.asarray(proba, dtype=np.float64)
    ids = list(ids)
    if proba.ndim != 2 or proba.shape[1] != 3:
        raise ValueError(
            f"proba must have shape (n_rows, 3) for model_a, model_b, tie; got {proba.shape}"
        )
    if len(ids) != proba.shape[0]:
        raise ValueError(f"ids has {len(ids)} entries but proba has {proba.shape[0]} rows")
    bad = ~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
    sums = proba.sum(axis=1)
    bad |= sums <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"proba row {i} (id {ids[i]!r}) is not a probability vector: {proba[i].tolist()}"
        )
    proba = proba / sums[:, None]
    df = pd.DataFrame(proba, columns=list(WINNER_COLUMNS))
    df.insert(0, "id", ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        df.to_csv(f, index=False)
    return path
