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
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError
from .io import labels_from_winner, read_csv_text
from .schema import (
    ARENA_COLUMNS,
    CELL_FORMATS,
    CELLS_ATTR,
    WINNER_COLUMNS,
    clean_text,
    excerpt,
    is_missing,
    parse_turns,
    report_missing,
    resolve_cell_format,
    where,
)

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
#: The cell rule a format's name implies when ``cell_format="auto"`` and the
#: format is given (not detected).
_FORMAT_CELLS = {"lmsys": "json", "wsdm": "text"}

#: What settles a frame of mixed cells, as read_preferences' user passes it.
_SETTLE = (
    "format='wsdm' or cell_format='text' (each cell one turn of plain text, verbatim; the "
    "WSDM Cup files), or format='lmsys' or cell_format='json' (each cell a JSON list of "
    "turns; the Kaggle LMSYS files)"
)

_ROLES = ("user", "assistant")
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


# ----------------------------------------------------------------- messages
class _Where(str):
    """``"row <label> (id <id>)"`` for messages, carrying the row label itself."""

    label: Any


def _where(frame: pd.DataFrame, i: int) -> _Where:
    text = _Where(where(frame, i))
    text.label = frame.index[i]
    return text


def _decode(cell: Any, column: str, where: _Where) -> Any:
    """A message list as stored: a list or array, or a JSON (or Python) string of one."""
    if isinstance(cell, str):
        try:
            return json.loads(cell)
        except ValueError:
            pass
        try:
            return ast.literal_eval(cell)  # CSV exports of Hugging Face datasets
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ArenaFormatError(
                f"{column} at {where}: expected a list of {{'role', 'content'}} messages "
                f"(or a JSON string of one), got the string {excerpt(cell)}",
                column=column,
                row=where.label,
            ) from None
    return cell


def _messages(cell: Any, column: str, where: _Where) -> list[tuple[str, str]]:
    """``(role, content)`` of each message of one conversation cell, checked."""
    cell = _decode(cell, column, where)
    if isinstance(cell, np.ndarray):
        cell = cell.tolist()
    if not isinstance(cell, (list, tuple)):
        raise ArenaFormatError(
            f"{column} at {where}: expected a list of {{'role', 'content'}} messages, got "
            f"{type(cell).__name__} {excerpt(cell)}",
            column=column,
            row=where.label,
        )
    if not cell:
        raise ArenaFormatError(
            f"{column} at {where}: expected a list of {{'role', 'content'}} messages, "
            "got an empty list",
            column=column,
            row=where.label,
        )
    out = []
    for k, message in enumerate(cell):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ArenaFormatError(
                f"{column} at {where}: message {k} must be a mapping with 'role' and "
                f"'content'; got {excerpt(message)}",
                column=column,
                row=where.label,
            )
        role, content = message["role"], message["content"]
        if role not in _ROLES:
            raise ArenaFormatError(
                f"{column} at {where}: message {k} has role {role!r}; expected 'user' or "
                "'assistant' (drop system messages before reading)",
                column=column,
                row=where.label,
            )
        if content is None:
            content = ""  # a missing answer, as a JSON null turn of the LMSYS files
        if not isinstance(content, str):
            raise ArenaFormatError(
                f"{column} at {where}: message {k} ({role}) has content of type "
                f"{type(content).__name__} {excerpt(content)}; expected a string",
                column=column,
                row=where.label,
            )
        out.append((str(role), clean_text(content)))
    return out


def _turns(
    messages: list[tuple[str, str]], column: str, where: _Where
) -> tuple[list[str], list[str]]:
    """User turns and assistant turns of alternating messages (user first)."""
    users: list[str] = []
    answers: list[str] = []
    for k, (role, content) in enumerate(messages):
        expected = _ROLES[k % 2]
        if role != expected:
            raise ArenaFormatError(
                f"{column} at {where}: message {k} has role {role!r}; expected {expected!r} "
                "(a conversation alternates user and assistant messages, user first)",
                column=column,
                row=where.label,
            )
        (users if role == "user" else answers).append(content)
    if len(answers) < len(users):
        answers.append("")  # the last question has no answer
    return users, answers


def _pair(
    frame: pd.DataFrame,
    i: int,
    side_a: list[tuple[str, str]],
    side_b: list[tuple[str, str]],
    names: tuple[str, str],
) -> tuple[list, list, list]:
    where = _where(frame, i)
    users_a, answers_a = _turns(side_a, names[0], where)
    users_b, answers_b = _turns(side_b, names[1], where)
    if users_a != users_b:
        turn = next(
            (k for k, (u, v) in enumerate(zip(users_a, users_b)) if u != v),
            min(len(users_a), len(users_b)),
        )
        raise ArenaFormatError(
            f"{names[0]} and {names[1]} at {where}: the user turns differ (turn {turn}: "
            f"{len(users_a)} vs {len(users_b)} user turns"
            + (
                f", {excerpt(users_a[turn], 40)} vs {excerpt(users_b[turn], 40)}"
                if turn < min(len(users_a), len(users_b))
                else ""
            )
            + "); both sides must answer the same prompt",
            column=names[0],
            row=where.label,
        )
    return users_a, answers_a, answers_b


# ------------------------------------------------------------------ formats
def _cell(turns: list[str]) -> str:
    return json.dumps(turns, ensure_ascii=False)


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


def _labels(frame: pd.DataFrame) -> np.ndarray | None:
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


def _text_cells(frame: pd.DataFrame, rule: str, source: str) -> dict[str, list[str]]:
    """The three text columns as JSON lists of turns, each cell read by ``rule``."""
    out: dict[str, list[str]] = {}
    missing: dict[str, list[int]] = {}
    for name in ARENA_COLUMNS:
        cells = []
        for i, cell in enumerate(frame[name].tolist()):
            if is_missing(cell):
                missing.setdefault(name, []).append(i)
                cells.append("[]")
                continue
            if isinstance(cell, (list, tuple, np.ndarray)) and any(
                isinstance(t, Mapping) for t in list(cell)
            ):
                raise ArenaFormatError(
                    f"{name} at {_where(frame, i)}: expected text (a string or a list of "
                    f"turn strings), got a list of messages {excerpt(cell)}; messages go "
                    "in conversation_a / conversation_b (format 'lmarena')",
                    column=name,
                    row=frame.index[i],
                )
            try:
                turns = parse_turns(cell, rule, column=name, row=frame.index[i])
            except ArenaFormatError as exc:  # name the row by its id too
                label = f"{name} at row {frame.index[i]!r}"
                raise ArenaFormatError(
                    str(exc).replace(label, f"{name} at {_where(frame, i)}", 1),
                    column=name,
                    row=exc.row,
                ) from None
            # a JSON list as written stays as written (it parsed: it is one)
            cells.append(cell if rule == "json" and isinstance(cell, str) else _cell(turns))
        out[name] = cells
    report_missing(frame, missing, source)
    return out


def _ids(frame: pd.DataFrame, fmt: str) -> np.ndarray | None:
    """The rows' ids: ``id``, else the format's own id column; ``None`` without either."""
    for name in ("id", ID_COLUMNS.get(fmt)):
        if name is not None and name in frame.columns:
            column = frame[name]
            if isinstance(column, pd.DataFrame):
                raise ValueError(f"Duplicate column {name!r}: expected one column of row ids.")
            if column.isna().any():
                i = int(np.flatnonzero(column.isna().to_numpy())[0])
                raise ValueError(
                    f"{name} at {_where(frame, i)}: the row has no id; every row of a file "
                    "with ids needs one."
                )
            return column.to_numpy()
    return None


def _arena_frame(
    frame: pd.DataFrame,
    texts: dict[str, list[str]],
    y: np.ndarray | None,
    dropped: set[str],
    three_classes: bool,
    fmt: str,
) -> pd.DataFrame:
    """Columns in the order of the Kaggle files, then the other columns kept."""
    data: dict[str, Any] = {}
    ids = _ids(frame, fmt)
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
    id_source = ID_COLUMNS.get(fmt)
    if "id" not in frame.columns and id_source is not None:
        skip.add(id_source)  # it became ``id``
    for name in frame.columns:
        if str(name) not in skip and name not in data:
            data[name] = frame[name].to_numpy()
    return pd.DataFrame(data, index=frame.index)


def _read_arena(
    frame: pd.DataFrame, fmt: str, rule: str, source: str
) -> tuple[pd.DataFrame, np.ndarray | None]:
    _check_columns(frame, fmt, ARENA_COLUMNS)
    y = _labels(frame)
    texts = _text_cells(frame, rule, source)
    three = y is not None and ("winner_tie" in frame.columns or bool((y == 2).any()))
    return _arena_frame(frame, texts, y, set(), three, fmt), y


def _read_lmarena(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    names = ("conversation_a", "conversation_b")
    _check_columns(frame, "lmarena", names)
    y = _labels(frame)
    texts: dict[str, list[str]] = {c: [] for c in ARENA_COLUMNS}
    cells_a, cells_b = frame[names[0]].tolist(), frame[names[1]].tolist()
    for i in range(len(frame)):
        where = _where(frame, i)
        prompt, a, b = _pair(
            frame,
            i,
            _messages(cells_a[i], names[0], where),
            _messages(cells_b[i], names[1], where),
            names,
        )
        for name, turns in zip(ARENA_COLUMNS, (prompt, a, b)):
            texts[name].append(_cell(turns))
    three = y is not None and ("winner_tie" in frame.columns or bool((y == 2).any()))
    return _arena_frame(frame, texts, y, set(names), three, "lmarena"), y


def _message_list(cell: Any) -> list | None:
    """The messages a cell holds (a list, or a string that decodes, as JSON or
    as the Python literal Hugging Face CSV exports write, to a non-empty list
    of ``{"role", "content"}`` mappings); ``None`` for any other cell."""
    if isinstance(cell, np.ndarray):
        cell = cell.tolist()
    if isinstance(cell, (list, tuple)):
        return list(cell)
    if not (isinstance(cell, str) and cell.lstrip().startswith("[")):
        return None
    decoded: Any = None
    try:
        decoded = json.loads(cell)
    except ValueError:
        try:
            decoded = ast.literal_eval(cell)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return None
    if (
        isinstance(decoded, list)
        and decoded
        and all(isinstance(m, Mapping) and {"role", "content"} <= set(m) for m in decoded)
    ):
        return decoded
    return None


def _message_rule(frame: pd.DataFrame, columns: tuple[str, ...], cell_format: str) -> str:
    """``"json"`` (message lists) or ``"text"`` (plain strings): one rule for ``columns``."""
    if cell_format != "auto":
        return cell_format
    lists: list[tuple[str, int, Any]] = []
    texts: list[tuple[str, int, Any]] = []
    for name in columns:
        for i, cell in enumerate(frame[name].tolist()):
            if is_missing(cell):
                continue
            (texts if _message_list(cell) is None else lists).append((name, i, cell))
    if lists and texts:
        few = min(lists, texts, key=len)
        shown = "; ".join(
            f"{name} at {_where(frame, i)}: {excerpt(cell, 40)}" for name, i, cell in few[:3]
        )
        raise ArenaFormatError(
            f"ambiguous cells in {', '.join(map(repr, columns))}: {len(lists)} hold a list "
            f"of {{'role', 'content'}} messages and {len(texts)} plain text "
            f"({'the lists' if few is lists else 'the plain ones'}: {shown}"
            f"{'; ...' if len(few) > 3 else ''}). One rule reads every cell of these "
            "columns: pass cell_format='text' to keep each cell as the text of one "
            "message, verbatim, or cell_format='json' to require message lists.",
            column=few[0][0],
            row=frame.index[few[0][1]],
        )
    return "json" if lists else "text"


def _side(cell: Any, column: str, where: _Where, role: str, rule: str) -> list[tuple[str, str]]:
    """The messages of one cell: under ``"text"`` a string is the text of one
    message of ``role``, verbatim; under ``"json"`` the cell is a list of
    messages (or a JSON / Python string of one)."""
    if is_missing(cell):
        raise ArenaFormatError(
            f"{column} at {where}: expected a string or a list of messages, got a missing value",
            column=column,
            row=where.label,
        )
    if rule == "text":
        if not isinstance(cell, str):
            raise ArenaFormatError(
                f"{column} at {where}: expected a string (cell_format='text': each cell is "
                f"the text of one message), got {type(cell).__name__} {excerpt(cell)}",
                column=column,
                row=where.label,
            )
        return [(role, clean_text(cell))]
    return _messages(cell, column, where)


def _read_chosen_rejected(
    frame: pd.DataFrame, random_state: Any, cell_format: str
) -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.utils import check_random_state

    _check_columns(frame, "chosen_rejected", ("chosen", "rejected"))
    answers_rule = _message_rule(frame, ("chosen", "rejected"), cell_format)
    n = len(frame)
    # a balanced, seeded order: half the rows show the chosen answer as A
    y = check_random_state(random_state).permutation(np.arange(n) % 2).astype(np.int64)
    has_prompt = "prompt" in frame.columns
    prompts = frame["prompt"].tolist() if has_prompt else [None] * n
    prompt_rule = _message_rule(frame, ("prompt",), cell_format) if has_prompt else "text"
    chosen, rejected = frame["chosen"].tolist(), frame["rejected"].tolist()
    texts: dict[str, list[str]] = {c: [] for c in ARENA_COLUMNS}
    for i in range(n):
        where = _where(frame, i)
        head: list[tuple[str, str]] = []
        if has_prompt and not is_missing(prompts[i]):
            head = _side(prompts[i], "prompt", where, "user", prompt_rule)
        side_c = _side(chosen[i], "chosen", where, "assistant", answers_rule)
        side_r = _side(rejected[i], "rejected", where, "assistant", answers_rule)
        # message lists that include the prompt turns stand alone
        head_c = [] if side_c[0][0] == "user" else head
        head_r = [] if side_r[0][0] == "user" else head
        if not head_c and side_c[0][0] != "user":
            raise ArenaFormatError(
                f"chosen at {where}: an answer without a prompt; give a 'prompt' column or "
                "chosen/rejected message lists that start with the user's turn",
                column="chosen",
                row=where.label,
            )
        full_c, full_r = head_c + side_c, head_r + side_r
        if y[i] == 0:
            prompt, a, b = _pair(frame, i, full_c, full_r, ("chosen", "rejected"))
        else:
            prompt, b, a = _pair(frame, i, full_c, full_r, ("chosen", "rejected"))
        for name, turns in zip(ARENA_COLUMNS, (prompt, a, b)):
            texts[name].append(_cell(turns))
    out = _arena_frame(frame, texts, y, {"prompt", "chosen", "rejected"}, False, "chosen_rejected")
    out.attrs[SOURCE_CELLS_ATTR] = {"chosen, rejected": answers_rule}
    if has_prompt:
        out.attrs[SOURCE_CELLS_ATTR]["prompt"] = prompt_rule
    # per-answer columns (score_chosen, score_rejected) follow their answer
    for name in list(out.columns):
        text = str(name)
        if "chosen" in text and text.replace("chosen", "rejected") in out.columns:
            other = text.replace("chosen", "rejected")
            first = np.where(y == 0, out[name].to_numpy(), out[other].to_numpy())
            second = np.where(y == 0, out[other].to_numpy(), out[name].to_numpy())
            out = out.drop(columns=[name, other])
            out[text.replace("chosen", "a")] = first
            out[text.replace("chosen", "b")] = second
    return out, y


# ---------------------------------------------------------------- the reader
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
    if fmt == "lmarena":
        frame, y = _read_lmarena(data)
        frame.attrs[SOURCE_CELLS_ATTR] = {"conversation_a, conversation_b": "json"}
    elif fmt == "chosen_rejected":
        frame, y = _read_chosen_rejected(data, random_state, cell_format)
    else:
        _check_columns(data, fmt, ARENA_COLUMNS)
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
        frame, y = _read_arena(data, fmt, rule, f"read_preferences({source})")
        frame.attrs[SOURCE_CELLS_ATTR] = {", ".join(ARENA_COLUMNS): rule}
    frame.attrs[FORMAT_ATTR] = fmt
    frame.attrs[CELLS_ATTR] = "json"
    return frame, y
