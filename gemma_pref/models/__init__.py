# SPDX-License-Identifier: Apache-2.0
"""Classifiers over embedded answers, a fine-tuned decoder, and A/B swap augmentation.

:class:`PairDifferenceClassifier` (the default's head), :class:`PreferenceBlendClassifier`,
:class:`GemmaPreferenceClassifier` (LoRA fine-tuning), :class:`SwapABClassifier` and
:func:`swap_ab`; the seed recipe's CatBoost is built by
:func:`gemma_pref.pipeline.make_catboost_classifier`.
"""

from __future__ import annotations

from ._catboost import AutoDeviceCatBoostClassifier
from .augmentation import SwapABClassifier, swap_ab
from .blend import PreferenceBlendClassifier
from .finetune import GemmaPreferenceClassifier
from .pairwise import PairDifferenceClassifier, make_logreg_classifier

__all__ = [
    "AutoDeviceCatBoostClassifier",
    "GemmaPreferenceClassifier",
    "PairDifferenceClassifier",
    "PreferenceBlendClassifier",
    "SwapABClassifier",
    "make_logreg_classifier",
    "swap_ab",
]
