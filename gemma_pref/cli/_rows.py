# SPDX-License-Identifier: Apache-2.0
"""The rows a command reads: a file by ``--format`` and ``--cell-format``, or the
bundled sample.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..data.schema import WINNER_COLUMNS
from ._common import CLIError


def read_rows(
    args: argparse.Namespace, path: str | None, *, labels: bool, what: str
) -> tuple[Any, str]:
    """Rows of ``path`` (any format :func:`~gemma_pref.read_preferences` reads,
    by ``--format`` and ``--cell-format``) as arena rows, or the bundled
    sample; the format read is in ``df.attrs["gemma_pref_format"]``."""
    import gemma_pref as gp
    from gemma_pref.data.readers import FORMAT_ATTR

    if path is None:
        df = gp.load_arena_sample()  # marked as the LMSYS format it is
        source = "bundled arena sample (715 rows of the Kaggle train.csv)"
        if not labels:
            df = df.drop(columns=list(WINNER_COLUMNS))
        return df, source
    df, y = gp.read_preferences(path, format=args.format, cell_format=args.cell_format)
    if labels and y is None:
        raise CLIError(
            f"{what} file {path!r} has no labels: expected a 'winner' column or the "
            "one-hot columns winner_model_a, winner_model_b[, winner_tie]"
        )
    return df, f"{path} ({df.attrs[FORMAT_ATTR]} format)"


def has_labels(df: Any) -> bool:
    return {"winner_model_a", "winner_model_b"} <= set(map(str, df.columns))
