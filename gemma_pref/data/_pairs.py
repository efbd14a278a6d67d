# SPDX-License-Identifier: Apache-2.0
"""The ``"chosen_rejected"`` format: reward-model preference pairs (no torch).

``chosen`` and ``rejected`` hold strings (with a ``prompt`` string) or
message lists that include the prompt turns; one rule reads each group of
columns. A seeded, balanced order puts the chosen answer first in half of
the rows, so the labels are balanced.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError
from ._cells import clean_text, excerpt, is_missing
from ._conversations import pair_turns, read_messages
from ._rows import Where, arena_frame, locate, turns_cell
from .schema import ARENA_COLUMNS

__all__ = ["PAIR_COLUMNS", "read_chosen_rejected"]

#: The columns of a ``"chosen_rejected"`` frame that hold the two answers.
PAIR_COLUMNS: tuple[str, str] = ("chosen", "rejected")


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
            f"{name} at {locate(frame, i)}: {excerpt(cell, 40)}" for name, i, cell in few[:3]
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


def _side(cell: Any, column: str, where: Where, role: str, rule: str) -> list[tuple[str, str]]:
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
    return read_messages(cell, column, where)


def read_chosen_rejected(
    frame: pd.DataFrame, random_state: Any, cell_format: str, id_column: str | None
) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    """Arena rows, labels and the rule of each group of source columns, of
    chosen/rejected pairs whose columns were checked."""
    from sklearn.utils import check_random_state

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
        where = locate(frame, i)
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
            prompt, a, b = pair_turns(frame, i, full_c, full_r, ("chosen", "rejected"))
        else:
            prompt, b, a = pair_turns(frame, i, full_c, full_r, ("chosen", "rejected"))
        for name, turns in zip(ARENA_COLUMNS, (prompt, a, b)):
            texts[name].append(turns_cell(turns))
    out = arena_frame(frame, texts, y, {"prompt", "chosen", "rejected"}, False, id_column)
    source_cells = {"chosen, rejected": answers_rule}
    if has_prompt:
        source_cells["prompt"] = prompt_rule
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
    return out, y, source_cells
