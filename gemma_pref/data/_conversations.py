# SPDX-License-Identifier: Apache-2.0
"""The ``"lmarena"`` format and the message lists it shares with chosen/rejected pairs (no torch).

The public arena releases (chatbot-arena-conversations,
arena-human-preference-100k/140k) hold each side as a list of
``{"role", "content"}`` messages: :func:`read_messages` checks one such cell,
:func:`pair_turns` turns the two sides of a row into the prompt turns and each
side's answers (the user turns must agree), and :func:`read_lmarena` reads a
frame of them.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError
from ._cells import clean_text, excerpt
from ._rows import Where, arena_frame, locate, read_labels, turns_cell
from .schema import ARENA_COLUMNS

__all__ = ["CONVERSATION_COLUMNS", "pair_turns", "read_lmarena", "read_messages"]

#: The columns of an ``"lmarena"`` frame that hold the two conversations.
CONVERSATION_COLUMNS: tuple[str, str] = ("conversation_a", "conversation_b")

_ROLES = ("user", "assistant")


def _decode(cell: Any, column: str, where: Where) -> Any:
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


def read_messages(cell: Any, column: str, where: Where) -> list[tuple[str, str]]:
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
    messages: list[tuple[str, str]], column: str, where: Where
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


def pair_turns(
    frame: pd.DataFrame,
    i: int,
    side_a: list[tuple[str, str]],
    side_b: list[tuple[str, str]],
    names: tuple[str, str],
) -> tuple[list, list, list]:
    """The prompt turns and each side's answers of row ``i``; both sides' user turns must agree."""
    where = locate(frame, i)
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


def read_lmarena(
    frame: pd.DataFrame, id_column: str | None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Arena rows and labels of a frame of conversations whose columns were checked."""
    names = CONVERSATION_COLUMNS
    y = read_labels(frame)
    texts: dict[str, list[str]] = {c: [] for c in ARENA_COLUMNS}
    cells_a, cells_b = frame[names[0]].tolist(), frame[names[1]].tolist()
    for i in range(len(frame)):
        where = locate(frame, i)
        prompt, a, b = pair_turns(
            frame,
            i,
            read_messages(cells_a[i], names[0], where),
            read_messages(cells_b[i], names[1], where),
            names,
        )
        for name, turns in zip(ARENA_COLUMNS, (prompt, a, b)):
            texts[name].append(turns_cell(turns))
    three = y is not None and ("winner_tie" in frame.columns or bool((y == 2).any()))
    return arena_frame(frame, texts, y, set(names), three, id_column), y
