# SPDX-License-Identifier: Apache-2.0
"""Evaluation: cross-validation on prompt-grouped folds, the competition's scores, plots.

Plots import matplotlib when one is drawn.
"""

from __future__ import annotations

from typing import Any

from .. import _compat
from . import plots
from .cross_validation import CVReport, cross_validate_preference, preference_scores
from .model_selection import PromptGroupKFold, prompt_groups

__all__ = [
    "CVReport",
    "PromptGroupKFold",
    "cross_validate_preference",
    "plots",
    "preference_scores",
    "prompt_groups",
]


def __getattr__(name: str) -> Any:
    # names gemma-pref 0.1's module at this path held that moved on (gemma_pref._compat)
    return _compat.moved_out(__name__, name)
