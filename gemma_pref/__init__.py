# SPDX-License-Identifier: Apache-2.0
"""gemma-pref: predict which of two chatbot answers a person prefers.

Format Chatbot Arena rows with :class:`ArenaTextFormatter`, embed them with a
local Gemma (or any Hugging Face) checkpoint through :class:`GemmaEmbedder`,
and classify the answers' embeddings with :class:`PairDifferenceClassifier`
(or the reference notebook's CatBoost), all in one scikit-learn pipeline built
by :func:`make_preference_pipeline`.
"""

from __future__ import annotations

from . import plots  # cheap: matplotlib is imported when a plot is drawn
from ._version import __version__
from .augmentation import SwapABClassifier, swap_ab, swap_labels
from .blend import PreferenceBlendClassifier
from .cache import CacheIntegrityWarning, CacheWriteWarning, clear_memory_cache
from .datasets import load_arena_sample
from .embedding import GemmaEmbedder
from .evaluation import cross_validate_preference, preference_scores
from .exceptions import (
    ArenaFormatError,
    DeviceWorkerError,
    MissingCellsWarning,
    ModelNotFoundError,
    SafeFormatError,
    TruncationWarning,
    VersionMismatchWarning,
)
from .features import ArenaStructureFeatures
from .finetune import GemmaPreferenceClassifier
from .formatting import (
    PAIR_TEMPLATE,
    SEED_TEMPLATE,
    ArenaTextFormatter,
    truncation_report,
)
from .io import labels_from_winner, load_arena_csv, write_submission
from .model_selection import PromptGroupKFold, prompt_groups
from .model_steps import model_steps, set_model_params
from .pairwise import PairDifferenceClassifier
from .persistence import load, load_safe, save, save_safe
from .pipeline import (
    RECIPES,
    make_catboost_classifier,
    make_logreg_classifier,
    make_preference_pipeline,
)
from .readers import read_preferences

__all__ = [
    "PAIR_TEMPLATE",
    "RECIPES",
    "SEED_TEMPLATE",
    "ArenaFormatError",
    "ArenaStructureFeatures",
    "ArenaTextFormatter",
    "CacheIntegrityWarning",
    "CacheWriteWarning",
    "DeviceWorkerError",
    "GemmaEmbedder",
    "GemmaPreferenceClassifier",
    "MissingCellsWarning",
    "ModelNotFoundError",
    "PairDifferenceClassifier",
    "PreferenceBlendClassifier",
    "PromptGroupKFold",
    "SafeFormatError",
    "SwapABClassifier",
    "TruncationWarning",
    "VersionMismatchWarning",
    "__version__",
    "clear_memory_cache",
    "cross_validate_preference",
    "labels_from_winner",
    "load",
    "load_arena_csv",
    "load_arena_sample",
    "load_safe",
    "make_catboost_classifier",
    "make_logreg_classifier",
    "make_preference_pipeline",
    "model_steps",
    "plots",
    "preference_scores",
    "prompt_groups",
    "read_preferences",
    "save",
    "save_safe",
    "set_model_params",
    "swap_ab",
    "swap_labels",
    "truncation_report",
    "write_submission",
]
