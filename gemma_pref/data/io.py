# SPDX-License-Identifier: Apache-2.0
"""Reading Kaggle arena files, labels, and writing submissions (no torch).

Other preference formats (WSDM Cup Parquet, LMArena conversations,
chosen/rejected pairs) are read by :func:`gemma_pref.data.readers.read_preferences`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ._cells import report_missing
from .schema import ARENA_COLUMNS, CLASS_NAMES, WINNER_COLUMNS, check_labels

__all__ = [
    "PROBA_TOLERANCE",
    "SUBMISSION_FORMATS",
    "WINNER_VALUES",
    "check_unique_ids",
    "labels_from_winner",
    "load_arena_csv",
    "read_csv_text",
    "write_submission",
]


#: Values of a ``winner`` column and their labels (WSDM Cup and LMArena files).
WINNER_VALUES: dict[str, int] = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}


def labels_from_winner(df: pd.DataFrame) -> np.ndarray:
    """Turn the winner columns of arena rows into class labels.

    Three kinds of label columns are read, in this order of preference:

    - the three one-hot columns ``winner_model_a``, ``winner_model_b`` and
      ``winner_tie`` of the Kaggle LMSYS files (three classes);
    - the two one-hot columns ``winner_model_a`` and ``winner_model_b``
      without ``winner_tie`` (a two-class task: every row has a winner);
    - a ``winner`` column holding ``"model_a"``, ``"model_b"``, ``"tie"`` or
      ``"tie (bothbad)"`` (the WSDM Cup 2025 and LMArena files).

    Parameters
    ----------
    df : pandas.DataFrame
        Arena rows with one of the label columns above.

    Returns
    -------
    y : ndarray of shape (n_rows,), dtype=int64
        0 when model A wins, 1 when model B wins, 2 for a tie (both ties of a
        ``winner`` column). A two-class task has only the labels 0 and 1.

    Raises
    ------
    ValueError
        When no label column is found (naming the columns that were), a row
        is not one-hot, a ``winner`` value is not one of those above (naming
        the row, its ``id`` where there is one, and the value), or a frame
        with both kinds of label columns has rows where they disagree
        (naming them).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"winner_model_a": [1, 0, 0], "winner_model_b": [0, 1, 0],
    ...                    "winner_tie": [0, 0, 1]})
    >>> labels_from_winner(df)
    array([0, 1, 2])
    >>> labels_from_winner(pd.DataFrame({"winner": ["model_b", "model_a"]}))
    array([1, 0])
    """
    columns = set(map(str, df.columns))
    if {"winner_model_a", "winner_model_b"} <= columns:
        names = list(WINNER_COLUMNS) if "winner_tie" in columns else list(WINNER_COLUMNS[:2])
        onehot = df[names]
        values = onehot.to_numpy()
        valid = np.isin(values, (0, 1)) & ~pd.isna(onehot).to_numpy()
        ok = valid.all(axis=1) & (np.where(valid, values, 0).sum(axis=1) == 1)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"winner columns at row {_where(df, i)}: expected exactly one 1 among "
                f"{', '.join(names)}, got {onehot.iloc[i].tolist()}"
            )
        y = np.argmax(values.astype(np.int64), axis=1).astype(np.int64)
        if "winner" in columns:  # two label columns: they must say the same
            _check_agree(df, y, _labels_from_winner_column(df), names)
        return y
    if "winner" in columns:
        return _labels_from_winner_column(df)
    raise ValueError(
        f"Missing label column(s): expected {', '.join(WINNER_COLUMNS)} (one-hot, one 1 "
        "per row; winner_tie may be left out for a two-class task) or a 'winner' "
        f"column ({', '.join(map(repr, WINNER_VALUES))}); got columns "
        f"{list(map(str, df.columns))}."
    )


def _check_agree(
    df: pd.DataFrame, onehot: np.ndarray, winner: np.ndarray, names: list[str]
) -> None:
    """Refuse rows whose one-hot columns and ``winner`` column disagree."""
    bad = np.flatnonzero(onehot != winner)
    if not len(bad):
        return
    shown = "; ".join(
        f"row {_where(df, int(i))}: {CLASS_NAMES[onehot[i]]} by {', '.join(names)}, "
        f"{df['winner'].iloc[int(i)]!r} by winner"
        for i in bad[:3]
    )
    raise ValueError(
        f"the label columns disagree in {len(bad)} of {len(df)} rows ({shown}"
        f"{'; ...' if len(bad) > 3 else ''}): one-hot {', '.join(names)} and a 'winner' "
        "column must give the same label; drop the column that is wrong."
    )


def _where(df: pd.DataFrame, i: int) -> str:
    """``row <label>`` of position ``i``, with its ``id`` when the frame has one."""
    where = repr(df.index[i])
    if "id" in df.columns:
        key = df["id"].iloc[i]
        where += f" (id {key.item() if isinstance(key, np.generic) else key!r})"
    return where


def _labels_from_winner_column(df: pd.DataFrame) -> np.ndarray:
    winner = df["winner"]
    if isinstance(winner, pd.DataFrame):
        raise ValueError("Duplicate column 'winner': expected one column of winners.")
    y = np.empty(len(df), dtype=np.int64)
    for i, value in enumerate(winner.tolist()):
        label = WINNER_VALUES.get(value) if isinstance(value, str) else None
        if label is None:
            raise ValueError(
                f"winner at row {_where(df, i)}: expected one of "
                f"{', '.join(map(repr, WINNER_VALUES))}, got {value!r}"
            )
        y[i] = label
    return y


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
        The file's columns as written. Only an empty field is a missing value:
        ``NA``, ``None``, ``null`` or ``nan`` are text (pandas' own default
        would read them as missing).

    Warns
    -----
    MissingCellsWarning
        When text cells (``prompt``, ``response_a``, ``response_b``) are
        empty fields: their count and the first ids, once.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When a required column is missing (naming it and the file).

    See Also
    --------
    read_preferences : Every public preference format, read and checked.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arena CSV not found: {str(path)!r}")
    df = read_csv_text(path)
    required = ["id", *ARENA_COLUMNS]
    if require_labels:
        required += list(WINNER_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks column(s) {', '.join(map(repr, missing))}; "
            f"expected {', '.join(required)}; found {', '.join(map(str, df.columns))}."
        )
    empty = {c: np.flatnonzero(df[c].isna().to_numpy()).tolist() for c in ARENA_COLUMNS}
    report_missing(df, empty, f"load_arena_csv({str(path)!r})")
    return df


def read_csv_text(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV file in which only an empty field is missing.

    ``NA``, ``None``, ``null``, ``nan``... are answers too: pandas' default
    would read them as missing values.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
    >>> _ = path.write_text("id,response_a\\n1,NA\\n2,\\n")
    >>> read_csv_text(path)["response_a"].tolist()
    ['NA', nan]
    """
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


#: How far a row of probabilities may sum from 1 (float rounding) in a submission.
PROBA_TOLERANCE = 1e-6


def check_unique_ids(ids: Sequence[Any]) -> None:
    """Refuse repeated ids, naming the first and both of its positions.

    Examples
    --------
    >>> check_unique_ids([1, 2, 1])
    Traceback (most recent call last):
    ...
    ValueError: id 1 appears twice (rows 0 and 2): a submission needs one row per id
    """
    seen: dict[Any, int] = {}
    for i, key in enumerate(ids):
        if key in seen:
            raise ValueError(
                f"id {key!r} appears twice (rows {seen[key]} and {i}): a submission needs "
                "one row per id"
            )
        seen[key] = i


#: Submission formats: the columns of each competition's ``submission.csv``.
SUBMISSION_FORMATS: dict[str, tuple[str, ...]] = {
    "lmsys": ("id", *WINNER_COLUMNS),
    "wsdm": ("id", "winner"),
}


def write_submission(
    ids: Sequence[Any] | np.ndarray | pd.Series,
    proba: Any,
    path: str | os.PathLike[str],
    *,
    format: str = "lmsys",
    classes: Sequence[int] | np.ndarray | None = None,
) -> Path:
    """Write a Kaggle submission in the LMSYS or the WSDM Cup format.

    ``format="lmsys"`` (the 2024 "LMSYS - Chatbot Arena" competition, scored
    by log loss): ``id, winner_model_a, winner_model_b, winner_tie``, the
    probabilities as given (each row must sum to 1 within
    :data:`PROBA_TOLERANCE`; nothing is renormalised). ``format="wsdm"`` (WSDM Cup
    2025 - Multilingual Chatbot Arena, scored by accuracy): ``id, winner``,
    ``"model_a"`` or ``"model_b"``, whichever of the two is more probable (a
    tie probability is ignored; equal probabilities give ``"model_a"``). The
    file is written to a temporary name and renamed, so an interrupted run
    never leaves a half-written file.

    Parameters
    ----------
    ids : sequence
        The ``id`` column of the test rows.
    proba : array-like of shape (n_rows, n_classes)
        Class probabilities, columns in the order of ``classes``.
    path : str or os.PathLike
        Output CSV path.
    format : {"lmsys", "wsdm"}, default="lmsys"
        The competition whose ``submission.csv`` to write.
    classes : sequence of int or None, default=None
        The label of each column of ``proba`` (a fitted model's ``classes_``).
        ``None``: ``[0, 1, 2]`` for three columns, ``[0, 1]`` for two.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ValueError
        For an unknown format, a shape that does not match ``ids`` or
        ``classes``, a label named twice in ``classes``, a repeated id
        (naming it and its rows), a row that is not a probability vector or
        does not sum to 1 (naming its id), or LMSYS probabilities from a
        model without the tie class.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> out = write_submission([7, 8], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
    ...                        tempfile.mkdtemp() + "/submission.csv")
    >>> pd.read_csv(out).columns.tolist()
    ['id', 'winner_model_a', 'winner_model_b', 'winner_tie']
    >>> out = write_submission([7, 8], [[0.6, 0.4], [0.3, 0.7]],
    ...                        tempfile.mkdtemp() + "/submission.csv", format="wsdm")
    >>> pd.read_csv(out)["winner"].tolist()
    ['model_a', 'model_b']
    """
    if format not in SUBMISSION_FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(map(repr, SUBMISSION_FORMATS))}; got {format!r}"
        )
    proba = np.asarray(proba, dtype=np.float64)
    ids = list(ids)
    if proba.ndim != 2 or proba.shape[1] not in (2, 3):
        raise ValueError(
            "proba must have shape (n_rows, 3) for model_a, model_b, tie or (n_rows, 2) "
            f"for model_a, model_b; got {proba.shape}"
        )
    expected = (
        f"classes must name the label (0, 1 or 2) of each of the {proba.shape[1]} columns of proba"
    )
    if classes is None:
        labels = [0, 1, 2][: proba.shape[1]]
    else:
        try:  # booleans and labels such as 0.5 are refused, not cast to int
            labels = [int(c) for c in check_labels(list(classes))]
        except ValueError as error:
            raise ValueError(f"{expected}; got {list(classes)!r}: {error}") from None
    if len(labels) != proba.shape[1]:
        raise ValueError(f"{expected}; got {list(labels)}")
    repeated = sorted({c for c in labels if labels.count(c) > 1})
    if repeated:
        raise ValueError(
            f"classes names the label(s) {repeated} of more than one column of proba "
            f"(got {list(labels)}): each column must be a class of its own"
        )
    if len(ids) != proba.shape[0]:
        raise ValueError(f"ids has {len(ids)} entries but proba has {proba.shape[0]} rows")
    check_unique_ids(ids)
    bad = ~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"proba row {i} (id {ids[i]!r}) is not a probability vector: {proba[i].tolist()}"
        )
    sums = proba.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > PROBA_TOLERANCE)
    if len(off):
        i = int(off[0])
        raise ValueError(
            f"proba row {i} (id {ids[i]!r}) sums to {float(sums[i])!r}, not 1 (tolerance "
            f"{PROBA_TOLERANCE:g}; {len(off)} row(s) so): write probabilities of all the "
            "model's classes, as predict_proba returns them; they are not renormalised"
        )
    full = np.zeros((len(ids), 3))
    full[:, labels] = proba
    if format == "lmsys":
        if 2 not in labels:
            raise ValueError(
                "an LMSYS submission holds tie probabilities, but the model knows only "
                "the classes model_a and model_b (a two-class model); write the WSDM "
                "format (format='wsdm', the CLI's --submission-format wsdm) instead"
            )
        df = pd.DataFrame(full, columns=list(WINNER_COLUMNS))
    else:
        if not {0, 1} <= set(labels):
            raise ValueError(
                f"a WSDM submission picks model_a or model_b; the classes {list(labels)} "
                "lack one of them"
            )
        winner = np.where(full[:, 1] > full[:, 0], "model_b", "model_a")
        df = pd.DataFrame({"winner": winner})
    df.insert(0, "id", ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        df.to_csv(f, index=False)
    return path
