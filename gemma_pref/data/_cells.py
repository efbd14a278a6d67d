# SPDX-License-Identifier: Apache-2.0
"""The one rule for reading a text cell, and the messages that name a cell (no torch).

A text cell of arena rows is either a JSON list of turns (the Kaggle LMSYS
files) or one turn of plain text (the WSDM Cup files and most other data);
:func:`parse_turns` reads one cell by the rule chosen for its whole frame
(:func:`~gemma_pref.data.schema.resolve_cell_format`), never by what the cell
looks like. The helpers here name a cell in error messages and warnings
(:func:`where`, :func:`excerpt`, :func:`report_missing`) and clean the text a
cell holds (:func:`clean_text`). They need nothing of the arena schema, so
:mod:`gemma_pref.data.schema` builds on them.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError, MissingCellsWarning

__all__ = [
    "JSON_LIST_START",
    "clean_text",
    "excerpt",
    "is_missing",
    "looks_like_json_list",
    "parse_turns",
    "plain_value",
    "report_missing",
    "where",
]

_SURROGATE = re.compile("[\ud800-\udfff]")
_EXCERPT_CHARS = 60


def excerpt(value: Any, limit: int = _EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages.

    Examples
    --------
    >>> excerpt("x" * 100, limit=10)
    "'xxxxxx..."
    """
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates by U+FFFD.

    JSON allows lone surrogates (``"\\ud83d"``); they cannot be encoded as
    UTF-8 and would crash a tokenizer later, far from the row that caused it.
    The formatter cleans every turn and the engine every text with this.

    Examples
    --------
    >>> clean_text("ok \\ud83d") == "ok \\ufffd"
    True
    """
    if _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text)
    return text


#: A string cell counts as a JSON list of turns, for ``cell_format="auto"``,
#: when it starts like one: ``[`` followed by ``"`` or ``null``, or is the
#: empty list ``[]`` (JSON whitespace allowed around the brackets). It is a
#: piece of evidence about the whole frame, never a rule for the cell itself.
JSON_LIST_START = re.compile(r"[ \t\n\r]*\[[ \t\n\r]*(?:\"|null\b|\][ \t\n\r]*\Z)")


def looks_like_json_list(cell: Any) -> bool:
    """Whether a string cell starts like a JSON list of turns.

    ``cell_format="auto"`` counts such cells to decide how a whole frame is
    read (:func:`~gemma_pref.data.schema.resolve_cell_format`); no cell is
    read by what it looks like.

    Examples
    --------
    >>> looks_like_json_list('["Hi", null]'), looks_like_json_list("[citation needed]")
    (True, False)
    """
    return isinstance(cell, str) and JSON_LIST_START.match(cell) is not None


def is_missing(cell: Any) -> bool:
    """Whether a cell is missing: ``None``, ``NaN``, ``pd.NA`` or ``pd.NaT``.

    Examples
    --------
    >>> is_missing(float("nan")), is_missing(""), is_missing("NA")
    (True, False, False)
    """
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return True
    return isinstance(cell, (float, np.floating)) and math.isnan(cell)


def parse_turns(
    cell: Any, cell_format: str = "json", *, column: str = "cell", row: Any = None
) -> list[str]:
    """Parse one arena cell into a list of turn strings, by an explicit rule.

    Two encodings hold text: the JSON lists of the Kaggle LMSYS files
    (``'["What is 2+2?", "And 3+3?"]'``, one item per turn;
    ``cell_format="json"``) and plain strings (``"What is 2+2?"``, one turn,
    verbatim: the WSDM Cup files and most other data; ``cell_format="text"``).
    The rule is chosen for a whole frame
    (:func:`~gemma_pref.data.schema.resolve_cell_format`), never from what
    one cell looks like: under ``"text"``, ``'["a", "b"]'`` is the one turn
    ``'["a", "b"]'``, as written.

    Parameters
    ----------
    cell : str, list, tuple, None or float
        A string, an already decoded list or tuple of strings (``"json"``
        only), or a missing value (``None`` / ``NaN`` / ``pd.NA``).
    cell_format : {"json", "text"}, default="json"
        ``"json"``: the cell must be a JSON list of strings or nulls (or a
        decoded list of them). ``"text"``: a string is one turn, verbatim.
    column : str, default="cell"
        Column name used in error messages.
    row : object, default=None
        Row label used in error messages.

    Returns
    -------
    turns : list of str
        One string per turn. A JSON ``null`` item becomes ``""``; a missing
        cell becomes ``[]`` (no turns). Lone UTF-16 surrogates are replaced by
        U+FFFD.

    Raises
    ------
    ArenaFormatError
        (a ``ValueError``) naming the column, the row, an excerpt of the cell
        and the rule that refused it: under ``"json"`` a cell that is not a
        JSON list of strings or nulls; under ``"text"`` a cell that is not a
        string; under either, a number or a mapping.

    Examples
    --------
    >>> parse_turns('["Hello", null]')
    ['Hello', '']
    >>> parse_turns('["a\\\\"quoted\\\\" word"]')
    ['a"quoted" word']
    >>> parse_turns('["apple", "banana"]', "text")
    ['["apple", "banana"]']
    >>> parse_turns("NA", "text")
    ['NA']
    """
    if is_missing(cell):
        return []
    if cell_format == "text":
        if isinstance(cell, str):
            return [clean_text(cell)]
        raise ArenaFormatError(
            f"{column} at row {row!r}: expected a string (cell_format='text': each cell is "
            f"one turn of plain text), got {type(cell).__name__} {excerpt(cell)}",
            column=column,
            row=row,
        )
    if cell_format != "json":
        raise ValueError(f"cell_format must be 'json' or 'text'; got {cell_format!r}.")
    expected = f"{column} at row {row!r}: expected a JSON list of strings (cell_format='json')"
    if isinstance(cell, str):
        try:
            value = json.loads(cell)
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", None) or type(exc).__name__
            raise ArenaFormatError(
                f"{expected}, got {excerpt(cell)} ({reason}); to read every cell as one "
                "turn of plain text, pass cell_format='text'",
                column=column,
                row=row,
            ) from None
    elif isinstance(cell, (list, tuple, np.ndarray)):
        value = list(cell)
    else:
        raise ArenaFormatError(
            f"{expected}, got {type(cell).__name__} {excerpt(cell)}",
            column=column,
            row=row,
        )
    if not isinstance(value, list):
        raise ArenaFormatError(
            f"{expected}, got JSON {type(value).__name__} {excerpt(cell)}; to read every "
            "cell as one turn of plain text, pass cell_format='text'",
            column=column,
            row=row,
        )
    turns = []
    for i, item in enumerate(value):
        if item is None:
            turns.append("")
        elif isinstance(item, str):
            turns.append(clean_text(item))
        else:
            raise ArenaFormatError(
                f"{expected}, item {i} is {type(item).__name__} {excerpt(item)}",
                column=column,
                row=row,
            )
    return turns


def plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def where(frame: pd.DataFrame, i: int) -> str:
    """``"row <label>"`` of position ``i``, with ``" (id <id>)"`` where the frame has ids.

    Examples
    --------
    >>> where(pd.DataFrame({"id": [7, 8]}, index=[3, 4]), 1)
    'row 4 (id 8)'
    """
    text = f"row {plain_value(frame.index[i])!r}"
    if "id" in frame.columns and not isinstance(frame["id"], pd.DataFrame):
        key = frame["id"].iloc[i]
        text += f" (id {plain_value(key)!r})"
    return text


def report_missing(frame: pd.DataFrame, missing: dict[str, list[int]], source: str = "") -> None:
    """Warn (:class:`~gemma_pref.exceptions.MissingCellsWarning`) that text cells
    of ``frame`` are missing: counts per column, the first rows and their ids.

    ``missing`` maps a column to the positions of its missing cells;
    ``source`` (a file, a function) opens the message. The warning is issued
    from one place, so Python's default filter shows a message once however
    many estimators read the same rows.
    """
    counts = {name: len(rows) for name, rows in missing.items() if rows}
    if not counts:
        return
    positions = sorted({i for rows in missing.values() for i in rows})
    shown = ", ".join(where(frame, i) for i in positions[:5])
    total = sum(counts.values())
    message = (
        (f"{source}: " if source else "")
        + f"{total} text cell{'s are' if total > 1 else ' is'} missing ("
        + ", ".join(f"{name}: {n}" for name, n in counts.items())
        + f"; {shown}{', ...' if len(positions) > 5 else ''}); a missing cell is read as "
        "the empty text. Fill or drop those rows if they should not be empty."
    )
    warnings.warn(
        MissingCellsWarning(
            message, counts=counts, rows=[plain_value(frame.index[i]) for i in positions[:5]]
        ),
        stacklevel=1,
    )
