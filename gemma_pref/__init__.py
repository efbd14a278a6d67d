# SPDX-License-Identifier: Apache-2.0
"""gemma-pref: predict which of two chatbot answers a person prefers.

Format Chatbot Arena rows with :class:`ArenaTextFormatter`, embed them with a
local Gemma (or any Hugging Face) checkpoint through :class:`GemmaEmbedder`,
and classify the answers' embeddings with :class:`PairDifferenceClassifier`
(or the reference notebook's CatBoost), all in one scikit-learn pipeline built
by :func:`make_preference_pipeline`.

The names here are the ones most users need; everything else lives in its
subpackage:

========================  ==========================================================
:mod:`gemma_pref.data`        arena rows: schema, readers, CSV, submissions, the sample
:mod:`gemma_pref.text`        formatting, token budget, structure features
:mod:`gemma_pref.backend`     checkpoints, dtype/device/backend policy, ONNX, home cache
:mod:`gemma_pref.embedding`   the embedder, batching, pooling, caches
:mod:`gemma_pref.models`      pair-difference, blend, fine-tuning, swap augmentation
:mod:`gemma_pref.pipeline`    recipes (:func:`make_preference_pipeline`)
:mod:`gemma_pref.evaluation`  cross-validation, prompt-grouped folds, plots
:mod:`gemma_pref.persistence` saving and loading
:mod:`gemma_pref.distributed` Ray Data
:mod:`gemma_pref.exceptions`  every error and warning
========================  ==========================================================
"""

from __future__ import annotations

from typing import Any

from . import _compat
from ._version import __version__
from .data import load_arena_csv, load_arena_sample, read_preferences, write_submission
from .embedding import GemmaEmbedder
from .evaluation import PromptGroupKFold, cross_validate_preference
from .models import (
    GemmaPreferenceClassifier,
    PairDifferenceClassifier,
    PreferenceBlendClassifier,
    SwapABClassifier,
)
from .persistence import load, load_safe, save, save_safe
from .pipeline import make_preference_pipeline
from .text import ArenaStructureFeatures, ArenaTextFormatter

_compat.install()

__all__ = [
    "ArenaStructureFeatures",
    "ArenaTextFormatter",
    "GemmaEmbedder",
    "GemmaPreferenceClassifier",
    "PairDifferenceClassifier",
    "PreferenceBlendClassifier",
    "PromptGroupKFold",
    "SwapABClassifier",
    "__version__",
    "cross_validate_preference",
    "load",
    "load_arena_csv",
    "load_arena_sample",
    "load_safe",
    "make_preference_pipeline",
    "read_preferences",
    "save",
    "save_safe",
    "write_submission",
]


def __getattr__(name: str) -> Any:
    # 0.1's top-level names that moved to a subpackage: found there, with a FutureWarning
    return _compat.moved_out(__name__, name)
