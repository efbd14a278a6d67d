# SPDX-License-Identifier: Apache-2.0
"""Arena data: the row schema, readers of every public form, CSV, submissions, the bundled sample.

No torch here. :func:`read_preferences` reads the Kaggle arena CSV, WSDM Cup Parquet, LMArena
conversations and chosen/rejected pairs into one frame of arena rows;
:mod:`gemma_pref.data.schema` holds the column names, the label and frame checks and the rule that
reads a frame's text cells, one rule per frame (:func:`parse_turns` reads one cell by it).
"""

from __future__ import annotations

from ._cells import parse_turns
from .io import labels_from_winner, load_arena_csv, write_submission
from .readers import PREFERENCE_FORMATS, detect_format, read_preferences
from .sample import load_arena_sample
from .schema import (
    ARENA_COLUMNS,
    CELL_FORMATS,
    CLASS_NAMES,
    WINNER_COLUMNS,
    check_arena_frame,
    check_labels,
    read_turns,
    swap_labels,
)

__all__ = [
    "ARENA_COLUMNS",
    "CELL_FORMATS",
    "CLASS_NAMES",
    "PREFERENCE_FORMATS",
    "WINNER_COLUMNS",
    "check_arena_frame",
    "check_labels",
    "detect_format",
    "labels_from_winner",
    "load_arena_csv",
    "load_arena_sample",
    "parse_turns",
    "read_preferences",
    "read_turns",
    "swap_labels",
    "write_submission",
]
