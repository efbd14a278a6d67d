# SPDX-License-Identifier: Apache-2.0
"""Read every public preference format into arena rows and labels (no torch).

:func:`read_preferences` turns a DataFrame or a CSV, Parquet or JSON Lines
file in one of four formats into the library's arena frame and its labels:

- ``"lmsys"``: the 2024 Kaggle "LMSYS - Chatbot Arena" files: ``prompt``,
  ``response_a``, ``response_b`` as JSON lists of turns, labels in the one-hot
  columns ``winner_model_a``, ``winner_model_b``, ``winner_tie``;
- ``"wsdm"``: the WSDM Cup 2025 "Multilingual Chatbot Arena" files: the same
  three text columns as plain strings (one turn each), ``winner`` in
  ``{"model_a", "model_b"}``, ``model_a``, ``model_b``, ``language``;
- ``"lmarena"``: the public arena releases (chatbot-arena-conversations,
  arena-human-preference-100k/140k): ``conversation_a`` and
  ``conversation_b`` as lists of ``{"role", "content"}`` messages, ``winner``
  in ``{"model_a", "model_b", "tie", "tie (bothbad)"}``;
- ``"chosen_rejected"``: reward-model data (TRL, most Hugging Face preference
  sets): ``chosen`` and ``rejected`` as strings with a ``prompt`` string, or
  as message lists that include the prompt turns.

The arena frame it returns is the one the Kaggle LMSYS files hold, so every
estimator, the CLI and :func:`~gemma_pref.data.labels_from_winner` read it as they
read ``train.csv``. See the "Data formats" page of the documentation.

This module reads the file, tells the format and checks its columns; each
format's reader lives in a private module beside it (``_arena``: ``"lmsys"``
and ``"wsdm"``; ``_conversations``: ``"lmarena"``; ``_pairs``:
``"chosen_rejected"``), and ``_rows`` builds the frame they return.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._arena import read_arena
from ._conversations import CONVERSATION_COLUMNS, read_lmarena
from ._pairs import PAIR_COLUMNS, read_chosen_rejected
from .io import read_csv_text
from .schema import ARENA_COLUMNS, CELL_FORMATS, CELLS_ATTR, resolve_cell_format

__all__ = [
    "FORMAT_ATTR",
    "ID_COLUMNS",
    "SOURCE_CELLS_ATTR",
    "PREFERENCE_FORMATS",
    "detect_format",
    "read_preferences",
]

logger = logging.getLogger(__name__)

#: The key of ``frame.attrs`` that names the format a frame was read from.
FORMAT_ATTR = "gemma_pref_format"
#: The key of ``frame.attrs`` that says by which rule each group of the
#: source's text columns was read (``{"prompt, response_a, response_b": "text"}``).
SOURCE_CELLS_ATTR = "gemma_pref_source_cells"

#: The formats :func:`read_preferences` reads, with the columns that identify them.
PREFERENCE_FORMATS: dict[str, str] = {
    "lmsys": "prompt, response_a, response_b as JSON lists of turns; labels in "
    "winner_model_a, winner_model_b[, winner_tie] (Kaggle LMSYS - Chatbot Arena)",
    "wsdm": "prompt, response_a, response_b as plain strings; labels in winner "
    "(model_a/model_b) (WSDM Cup 2025 - Multilingual Chatbot Arena)",
    "lmarena": "conversation_a, conversation_b as lists of {role, content} messages; "
    "labels in winner (model_a/model_b/tie/tie (bothbad)) (LMArena releases)",
    "chosen_rejected": "chosen, rejected as strings (with prompt) or message lists "
    "(reward-model / TRL preference data)",
}

#: Where each format keeps its row ids, besides ``id``: the column that becomes ``id``.
ID_COLUMNS: dict[str, str] = {"lmarena": "question_id"}
#: The columns each format needs.
_FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "lmsys": ARENA_COLUMNS,
    "wsdm": ARENA_COLUMNS,
    "lmarena": CONVERSATION_COLUMNS,
    "chosen_rejected": PAIR_COLUMNS,
}
#: The cell rule a format's name implies when ``cell_format="auto"`` and the
#: format is given (not detected).
_FORMAT_CELLS = {"lmsys": "json", "wsdm": "text"}

#: What settles a frame of mixed cells, as read_preferences' user passes it.
_SETTLE = (
    "format='wsdm' or cell_format='text' (each cell one turn of plain text, verbatim; the "
    "WSDM Cup files), or format='lmsys' or cell_format='json' (each cell a JSON list of "
    "turns; the Kaggle LMSYS files)"
)

_READ_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


# ----------------------------------------------------------------- reading files
def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"preference file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv_text(path)  # "NA", "null" or "None" are answers too
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ImportError(
                f"reading {str(path)!r} needs a Parquet engine: pip install pyarrow ({exc})"
            ) from None
    if suffix in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip()
        lines = not head.startswith("[")  # a .json file may hold one array of records
        try:
            # no type conversion: ids stay as written, no column becomes a date
            dates = {} if int(pd.__version__.split(".")[0]) >= 3 else {"convert_dates": False}
            return pd.read_json(path, lines=lines, dtype=False, **dates)
        except ValueError as exc:
            kind = "JSON Lines (one object per line)" if lines else "a JSON array of records"
            raise ValueError(f"{str(path)!r} is not {kind}: {exc}") from None
    raise ValueError(
        f"cannot read {str(path)!r}: expected a file ending in {', '.join(_READ_SUFFIXES)}"
    )


# ---------------------------------------------------------------- detection
def detect_format(frame: pd.DataFrame, *, cell_format: str = "auto") -> str:
    """The format of a frame of preference rows, from its columns.

    ``conversation_a`` and ``conversation_b``: ``"lmarena"``; ``chosen`` and
    ``rejected``: ``"chosen_rejected"``; ``prompt``, ``response_a`` and
    ``response_b``: ``"lmsys"`` with ``winner_model_*`` columns, ``"wsdm"``
    with a ``winner`` column, and without labels (a test file) by how its
    text cells are encoded, one rule for the frame: ``"lmsys"`` when every
    non-missing cell is a JSON list of turns, ``"wsdm"`` when none is
    (:func:`~gemma_pref.data.schema.resolve_cell_format`); a frame with both kinds
    is refused.

    Parameters
    ----------
    frame : pandas.DataFrame
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells are encoded, when known: ``"json"`` tells an
        unlabelled frame is ``"lmsys"``, ``"text"`` that it is ``"wsdm"``.

    Returns
    -------
    format : str
        A key of :data:`PREFERENCE_FORMATS`.

    Raises
    ------
    ValueError
        When the columns match no format: names the columns seen and the
        formats known; an
        :class:`~gemma_pref.exceptions.ArenaFormatError` for an unlabelled
        frame whose cells are of both kinds, naming rows.

    Examples
    --------
    >>> import pandas as pd
    >>> detect_format(pd.DataFrame(columns=["prompt", "chosen", "rejected"]))
    'chosen_rejected'
    """
    columns = set(map(str, frame.columns))
    if {"conversation_a", "conversation_b"} <= columns:
        return "lmarena"
    if {"chosen", "rejected"} <= columns:
        return "chosen_rejected"
    if set(ARENA_COLUMNS) <= columns:
        if "winner_model_a" in columns or "winner_model_b" in columns:
            return "lmsys"
        if "winner" in columns:
            return "wsdm"
        rule = resolve_cell_format(
            frame,
            cell_format,
            settle=_SETTLE,
        )
        return "lmsys" if rule == "json" else "wsdm"
    known = "; ".join(f"{name!r}: {what}" for name, what in PREFERENCE_FORMATS.items())
    raise ValueError(
        f"read_preferences cannot tell the format of rows with columns "
        f"{list(map(str, frame.columns))}; the formats known are {known}. Rename "
        "the columns to one of them or pass format=."
    )


# ------------------------------------------------------------ the reader
def _check_columns(frame: pd.DataFrame, fmt: str, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"Missing column(s) {', '.join(map(repr, missing))} of the {fmt!r} format "
            f"({PREFERENCE_FORMATS[fmt]}); got columns {list(map(str, frame.columns))}."
        )
    repeated = [c for c in required if int((frame.columns == c).sum()) > 1]
    if repeated:
        raise ValueError(
            f"Duplicate column(s) {', '.join(map(repr, repeated))}; expected one each; got "
            f"columns {list(map(str, frame.columns))}."
        )


def read_preferences(
    data: Any,
    format: str = "auto",
    *,
    cell_format: str = "auto",
    random_state: Any = 0,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Read preference rows in any public format into arena rows and labels.

    Parameters
    ----------
    data : pandas.DataFrame, mapping, str or os.PathLike
        The rows, or a file holding them: ``.csv``, ``.parquet`` (``.pq``),
        ``.jsonl`` (``.ndjson``) or ``.json`` (JSON Lines, or one array of
        records).
    format : {"auto", "lmsys", "wsdm", "lmarena", "chosen_rejected"}, default="auto"
        The format of ``data`` (see :data:`PREFERENCE_FORMATS`). ``"auto"``
        detects it from the columns (:func:`detect_format`) and logs its
        choice at INFO level.
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells are encoded, one rule per column group (never per
        cell). For ``prompt``, ``response_a`` and ``response_b``: ``"json"``,
        each cell a JSON list of turns; ``"text"``, each cell one turn of
        plain text, kept verbatim whatever it looks like. For ``chosen``,
        ``rejected`` (together) and ``prompt``: ``"json"``, each cell a list
        of ``{"role", "content"}`` messages (or a JSON / Python string of
        one); ``"text"``, each cell the text of one message. ``"auto"``: the
        format's own rule when ``format`` is given (``"lmsys"``: JSON,
        ``"wsdm"``: text), else the data's: ``"json"`` when every non-missing
        cell of the group is of the JSON kind, ``"text"`` when none is; a
        group with both kinds is refused, naming rows. Ignored by
        ``"lmarena"`` (messages by definition, their contents verbatim).
    random_state : int, RandomState instance or None, default=0
        Seed of the A/B order of chosen/rejected pairs: a random permutation
        puts the chosen answer first in half of the rows (so the labels are
        balanced), the same for the same seed. Ignored by the other formats.

    Returns
    -------
    frame : pandas.DataFrame
        Arena rows as the Kaggle LMSYS files hold them, with ``data``'s index:
        ``id`` (``data``'s ``id``, or the format's own id column:
        ``question_id`` for ``"lmarena"``; no ``id`` column when the data
        has none, so that no row position passes for an id), ``model_a`` and
        ``model_b`` where given, ``prompt``, ``response_a`` and
        ``response_b`` as JSON lists of turns (a plain string is one turn),
        the one-hot labels ``winner_model_a``, ``winner_model_b`` and, when
        the task has ties, ``winner_tie``; then every other column of
        ``data`` (``language``, ...). ``frame.attrs["gemma_pref_format"]``
        (:data:`FORMAT_ATTR`) names the format read, and
        ``frame.attrs["gemma_pref_cells"]`` is ``"json"``: every text cell is
        now a JSON list of turns, so the estimators read the frame by that
        rule without looking at its cells again;
        ``frame.attrs["gemma_pref_source_cells"]`` (:data:`SOURCE_CELLS_ATTR`)
        says how the source's cells were read.
    y : ndarray of shape (n_rows,), dtype=int64, or None
        Labels 0 (model_a wins), 1 (model_b wins) and 2 (tie, both kinds of
        LMArena ties); only 0 and 1 for a two-class task such as the WSDM
        Cup's. ``None`` for rows without labels (a test file).

    Warns
    -----
    MissingCellsWarning
        When text cells are missing (empty CSV fields, nulls): their count per
        column and the first rows with their ids, once; each is read as the
        empty text. ``"NA"``, ``"None"``, ``"null"`` or ``"nan"`` in a file
        are text, never missing.

    Raises
    ------
    ValueError
        When the format cannot be told (naming the columns seen and the
        formats known), a column is missing, a label is not one of the known
        values, the text cells mix encodings under ``cell_format="auto"``
        (naming rows and the parameter that settles it), or a cell is
        malformed (an
        :class:`~gemma_pref.exceptions.ArenaFormatError` naming the column,
        the row and what was expected): a message with a role other than
        ``user`` / ``assistant`` or out of turn, an empty conversation, a
        missing message or content, or two sides whose user turns differ.
    FileNotFoundError
        When ``data`` names a file that does not exist.

    See Also
    --------
    labels_from_winner : The labels of a frame this returns.
    write_submission : The submission file, in the LMSYS or WSDM format.

    Notes
    -----
    A conversation keeps all its turns: the user messages become the
    ``prompt`` turns and each side's assistant messages its response turns
    (a last question without an answer gets the empty answer). For
    ``"chosen_rejected"`` a string ``prompt`` is the first user turn; a
    chosen or rejected message list that starts with a user message holds
    its own prompt turns, which must equal the other side's.

    Examples
    --------
    >>> import pandas as pd
    >>> import gemma_pref as gp
    >>> wsdm = pd.DataFrame({"id": ["a1"], "prompt": ["Capital of France?"],
    ...                      "response_a": ["Paris."], "response_b": ["Lyon."],
    ...                      "winner": ["model_a"], "language": ["English"]})
    >>> frame, y = gp.read_preferences(wsdm)
    >>> frame.attrs["gemma_pref_format"], y.tolist()
    ('wsdm', [0])
    >>> frame.columns.tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['id', 'prompt', 'response_a', 'response_b', 'winner_model_a', 'winner_model_b',
     'language']
    >>> frame.loc[0, "prompt"], frame.loc[0, "response_a"]
    ('["Capital of France?"]', '["Paris."]')
    """
    source = "a DataFrame"
    if isinstance(data, (str, os.PathLike)):
        source = repr(os.fspath(data))
        data = _read_file(Path(data))
    elif isinstance(data, Mapping) and not isinstance(data, pd.DataFrame):
        data = pd.DataFrame(dict(data))
    if not isinstance(data, pd.DataFrame):
        raise ValueError(
            "read_preferences reads a pandas DataFrame or a .csv, .parquet or .jsonl file; "
            f"got {type(data).__name__}."
        )
    if cell_format not in CELL_FORMATS:
        raise ValueError(
            f"cell_format must be one of {', '.join(map(repr, CELL_FORMATS))}; got {cell_format!r}"
        )
    if format == "auto":
        fmt = detect_format(data, cell_format=cell_format)
        logger.info("read_preferences: %s holds %d rows in the %r format", source, len(data), fmt)
    elif format in PREFERENCE_FORMATS:
        fmt = format
    else:
        raise ValueError(
            f"format must be 'auto' or one of {', '.join(map(repr, PREFERENCE_FORMATS))}; "
            f"got {format!r}"
        )
    frame: pd.DataFrame
    y: np.ndarray | None
    _check_columns(data, fmt, _FORMAT_COLUMNS[fmt])
    if fmt == "lmarena":
        frame, y = read_lmarena(data, ID_COLUMNS.get(fmt))
        frame.attrs[SOURCE_CELLS_ATTR] = {"conversation_a, conversation_b": "json"}
    elif fmt == "chosen_rejected":
        frame, y, source_cells = read_chosen_rejected(
            data, random_state, cell_format, ID_COLUMNS.get(fmt)
        )
        frame.attrs[SOURCE_CELLS_ATTR] = source_cells
    else:
        rule = cell_format
        if rule == "auto":
            rule = (
                _FORMAT_CELLS[fmt]
                if format != "auto"
                else resolve_cell_format(
                    data,
                    settle=_SETTLE,
                )
            )
        frame, y = read_arena(data, rule, f"read_preferences({source})", ID_COLUMNS.get(fmt))
        frame.attrs[SOURCE_CELLS_ATTR] = {", ".join(ARENA_COLUMNS): rule}
    frame.attrs[FORMAT_ATTR] = fmt
    frame.attrs[CELLS_ATTR] = "json"
    return frame, y
