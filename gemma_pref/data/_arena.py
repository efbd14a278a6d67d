# SPDX-License-Identifier: Apache-2.0
"""The ``"lmsys"`` and ``"wsdm"`` formats: ``prompt``, ``response_a``, ``response_b`` (no torch).

The Kaggle LMSYS files hold JSON lists of turns, the WSDM Cup files plain
strings of one turn; one rule reads every cell of a frame (chosen by
:func:`~gemma_pref.data.readers.read_preferences`), and each cell becomes a
JSON list of turns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError
from ._cells import excerpt, is_missing, parse_turns, report_missing
from ._rows import arena_frame, locate, read_labels, turns_cell
from .schema import ARENA_COLUMNS

__all__ = ["read_arena"]


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
                    f"{name} at {locate(frame, i)}: expected text (a string or a list of "
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
                    str(exc).replace(label, f"{name} at {locate(frame, i)}", 1),
                    column=name,
                    row=exc.row,
                ) from None
            # a JSON list as written stays as written (it parsed: it is one)
            cells.append(cell if rule == "json" and isinstance(cell, str) else turns_cell(turns))
        out[name] = cells
    report_missing(frame, missing, source)
    return out


def read_arena(
    frame: pd.DataFrame, rule: str, source: str, id_column: str | None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Arena rows and labels of a frame whose columns were checked, every cell read by ``rule``."""
    y = read_labels(frame)
    texts = _text_cells(frame, rule, source)
    three = y is not None and ("winner_tie" in frame.columns or bool((y == 2).any()))
    return arena_frame(frame, texts, y, set(), three, id_column), y
