# SPDX-License-Identifier: Apache-2.0
"""Evaluation: cross-validation on prompt-grouped folds, the competition's scores, plots.

Plots import matplotlib when one is drawn.
"""

from __future__ import annotations

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
