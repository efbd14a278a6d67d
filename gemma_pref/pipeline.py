# SPDX-License-Identifier: Apache-2.0
"""The preference pipeline: formatter, embedder, classifier."""

from __future__ import annotations

import os
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from .embedding import GemmaEmbedder
from .formatting import ArenaTextFormatter

__all__ = ["make_catboost_classifier", "make_preference_pipeline"]


def _catboost_gpu_available() -> bool:
    try:
        from catboost.utils import get_gpu_device_count

        return get_gpu_device_count() > 0
    except Exception:  # CPU-only catboost builds, missing drivers
        return False


def make_catboost_classifier(**params: Any) -> BaseEstimator:
    """The reference notebook's CatBoost classifier, with quiet defaults.

    ``loss_function="MultiClass"``, ``learning_rate=0.03``, ``iterations=1000``,
    ``task_type="GPU"`` when CatBoost sees a CUDA device, else ``"CPU"`` with
    every core; no console output and no ``catboost_info/`` folder. Keyword
    arguments override these.

    Returns
    -------
    classifier : catboost.CatBoostClassifier
    """
    try:
        from catboost import CatBoostClassifier
    except ImportError as exc:  # pragma: no cover - catboost is a dependency
        raise ImportError("the default classifier needs catboost: pip install catboost") from exc

    defaults: dict[str, Any] = {
        "loss_function": "MultiClass",
        "learning_rate": 0.03,
        "iterations": 1000,
        "task_type": "GPU" if _catboost_gpu_available() else "CPU",
        "random_seed": 0,
        "verbose": False,
        "allow_writing_files": False,
    }
    if defaults["task_type"] == "CPU":
        defaults["thread_count"] = -1
    defaults.update(params)
    return CatBoostClassifier(**defaults)


def make_preference_pipeline(
    model_name_or_path: str | os.PathLike[str] | None = None,
    *,
    classifier: BaseEstimator | None = None,
    formatter: ArenaTextFormatter | None = None,
    **embedder_params: Any,
) -> Pipeline:
    """Build the formatter -> embedder -> classifier pipeline.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike
        Checkpoint for :class:`GemmaEmbedder`.
    classifier : estimator or None, default=None
        Replaces the default :func:`make_catboost_classifier`.
    formatter : ArenaTextFormatter or None, default=None
        Replaces the default ``ArenaTextFormatter()``.
    **embedder_params
        Keyword arguments of :class:`GemmaEmbedder` (``max_length``,
        ``quantization``, ``devices``, ``cache_dir``, ...).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``"formatter"``, ``"embedder"``, ``"classifier"``. Fit it with
        ``y`` in {0: model_a wins, 1: model_b wins, 2: tie}; ``predict_proba``
        columns follow that order.

    Examples
    --------
    >>> from gemma_pref import make_preference_pipeline
    >>> pipe = make_preference_pipeline("path/to/gemma-2-9b", quantization="4bit")
    >>> list(pipe.named_steps)
    ['formatter', 'embedder', 'classifier']
    """
    return Pipeline(
        [
            ("formatter", formatter if formatter is not None else ArenaTextFormatter()),
            ("embedder", GemmaEmbedder(model_name_or_path, **embedder_params)),
            ("classifier", classifier if classifier is not None else make_catboost_classifier()),
        ]
    )
