# SPDX-License-Identifier: Apache-2.0
"""The preference pipeline: the recipes, and which formatter and model each uses.

This module is the one place that maps a recipe to its steps: the layout its
formatter writes (:data:`RECIPE_LAYOUTS`), the classifier it trains
(:func:`make_recipe_classifier`) and the embedder settings it starts from
(:data:`PAIRWISE_DEFAULTS`).
:func:`~gemma_pref.pipeline.build.make_preference_pipeline` builds the whole
pipeline from them; the command line and the benchmarks build theirs from the
same functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from ..models.pairwise import PairDifferenceClassifier, make_logreg_classifier
from ..text.formatting import ArenaTextFormatter

__all__ = [
    "CLASSIFIER_KINDS",
    "PAIRWISE_DEFAULTS",
    "PromptGroupedPipeline",
    "RECIPES",
    "RECIPE_LAYOUTS",
    "check_recipe",
    "make_catboost_classifier",
    "make_recipe_classifier",
    "make_recipe_formatter",
]

#: The recipes of :func:`make_preference_pipeline`.
RECIPES: tuple[str, ...] = ("pairwise", "embedding", "structure", "seed", "finetune")
#: The ``ArenaTextFormatter`` layout of each recipe that embeds text.
RECIPE_LAYOUTS: Mapping[str, str] = {
    "pairwise": "pair",
    "embedding": "pair",
    "seed": "joint",
    "finetune": "joint",
}
#: Classifiers :func:`make_recipe_classifier` builds; ``"auto"`` is the recipe's own.
CLASSIFIER_KINDS: tuple[str, ...] = ("auto", "logreg", "catboost")
#: The embedder settings of the recipes ``"pairwise"`` and ``"embedding"``
#: unless given, chosen by ``benchmarks/quality.py`` (docs/quality.md): 256
#: tokens per text, and the mean of the hidden states at 45% to 65% of the
#: model's depth (states 8 to 12 of Gemma 3 270M's 18, 19 to 27 of Gemma-2-9b's 42).
PAIRWISE_DEFAULTS: Mapping[str, Any] = {
    "max_length": 256,
    "layer": (0.45, 0.5, 0.55, 0.6, 0.65),
}


def check_recipe(recipe: Any, owner: str) -> str:
    """``recipe`` if it is one of :data:`RECIPES`, else a ``ValueError`` naming ``owner``."""
    if recipe not in RECIPES:
        raise ValueError(
            f"The 'recipe' parameter of {owner} must be one of "
            f"{', '.join(map(repr, RECIPES))}; got {recipe!r}."
        )
    return str(recipe)


def make_catboost_classifier(**params: Any) -> BaseEstimator:
    """The reference notebook's CatBoost classifier, with quiet defaults.

    ``loss_function="MultiClass"``, ``learning_rate=0.03``,
    ``iterations=1000``, every CPU core, no console output and no
    ``catboost_info/`` folder. Keyword arguments override these.

    Without a ``task_type`` keyword, the device is chosen at each ``fit``:
    ``"GPU"`` when CatBoost sees a CUDA device on the machine that fits,
    else ``"CPU"``; so a pipeline built on a laptop and fitted on a GPU
    machine uses the GPU.

    Returns
    -------
    classifier : AutoDeviceCatBoostClassifier
        A ``catboost.CatBoostClassifier`` subclass that only adds that choice.
    """
    try:
        from ..models._catboost import AutoDeviceCatBoostClassifier
    except ImportError as exc:  # pragma: no cover - catboost is a dependency
        raise ImportError(
            "the seed recipe's classifier needs catboost: pip install catboost"
        ) from exc

    defaults: dict[str, Any] = {
        "loss_function": "MultiClass",
        "learning_rate": 0.03,
        "iterations": 1000,
        "random_seed": 0,
        "verbose": False,
        "allow_writing_files": False,
        "thread_count": -1,
    }
    defaults.update(params)
    return AutoDeviceCatBoostClassifier(**defaults)


def make_recipe_classifier(
    recipe: str = "embedding",
    kind: str = "auto",
    *,
    C: float | None = None,
    iterations: int | None = None,
) -> BaseEstimator:
    """The classifier of embeddings of a recipe, or another kind in the recipe's shape.

    Parameters
    ----------
    recipe : {"embedding", "seed"}, default="embedding"
        (``"pairwise"`` and ``"structure"`` are
        :class:`~gemma_pref.PreferenceBlendClassifier`, which chooses its own
        models; ``"finetune"`` has no separate classifier of embeddings.)
    kind : {"auto", "logreg", "catboost"}, default="auto"
        ``"auto"``: the recipe's own (embedding: logistic regression, seed:
        CatBoost). Under ``recipe="embedding"`` either kind is wrapped in
        :class:`PairDifferenceClassifier`.
    C : float or None, default=None
        Logistic regression's inverse regularisation; ``None`` chooses it by
        cross-validation among :data:`~gemma_pref.models.pairwise.DEFAULT_CS`.
    iterations : int or None, default=None
        CatBoost iterations; ``None``: 1000.

    Returns
    -------
    classifier : estimator

    Examples
    --------
    >>> type(make_recipe_classifier("embedding", "catboost").estimator).__name__
    'AutoDeviceCatBoostClassifier'
    >>> make_recipe_classifier("seed", "logreg", C=0.01)[-1]
    LogisticRegression(C=0.01, max_iter=5000)
    """
    recipe = check_recipe(recipe, "make_recipe_classifier")
    if recipe == "finetune":
        raise ValueError(
            "recipe='finetune' trains the model itself (GemmaPreferenceClassifier): "
            "build it with make_preference_pipeline(recipe='finetune', ...)."
        )
    if recipe in ("pairwise", "structure"):
        raise ValueError(
            f"recipe={recipe!r} is PreferenceBlendClassifier, which chooses its own "
            "models and their C by cross-validation; a classifier of embeddings "
            "belongs to recipe='embedding' (one text per answer) or 'seed'."
        )
    if kind not in CLASSIFIER_KINDS:
        raise ValueError(
            "The 'kind' parameter of make_recipe_classifier must be one of "
            f"{', '.join(map(repr, CLASSIFIER_KINDS))}; got {kind!r}."
        )
    if C is not None and not C > 0:
        raise ValueError(f"C must be positive, got {C}")
    if kind == "auto":
        kind = "logreg" if recipe == "embedding" else "catboost"
    pairwise = recipe == "embedding"
    if kind == "catboost":
        params = {} if iterations is None else {"iterations": iterations}
        catboost = make_catboost_classifier(**params)
        return PairDifferenceClassifier(catboost) if pairwise else catboost
    if pairwise:
        return (
            PairDifferenceClassifier()
            if C is None
            else PairDifferenceClassifier(make_logreg_classifier(C))
        )
    return make_logreg_classifier(C)


def make_recipe_formatter(
    recipe: str = "pairwise",
    model_name_or_path: str | os.PathLike[str] | None = None,
    *,
    max_length: int | None = None,
    budget: bool | None = None,
    **params: Any,
) -> ArenaTextFormatter:
    """The recipe's :class:`ArenaTextFormatter`, with ``params``.

    The recipe sets the layout (``"pair"`` for ``"pairwise"`` and
    ``"embedding"``, one text per row for ``"seed"`` and ``"finetune"``).

    ``budget=True`` sets a token budget of ``max_length`` (default: the
    recipe's, 256 for ``"pairwise"`` and ``"embedding"``, 1024 for ``"seed"``
    and ``"finetune"``) counted with the tokenizer of ``model_name_or_path``
    (the default model's when ``None``), so that a long prompt does not crowd
    the answers out of the tokens the model keeps: the prompt and each answer
    keep their shares of the text. ``None`` (default) is ``True`` for
    ``"pairwise"`` (it scores better, docs/quality.md) and ``"finetune"``, and
    ``False`` for ``"embedding"`` and ``"seed"``, whose texts are cut at
    ``max_length`` tokens from their end by the embedder (a long prompt can
    then leave both texts of a row the same tokens, which
    :class:`GemmaEmbedder` reports with a
    :class:`~gemma_pref.exceptions.TruncationWarning`).

    With a ``model_name_or_path``, the texts use the checkpoint's own chat
    template when it has one that is not Gemma's (``template="auto"``: Qwen,
    Llama, Mistral... read the chat format they were trained on); Gemma
    checkpoints, and the default model, keep Gemma's templates byte for byte.

    Examples
    --------
    >>> make_recipe_formatter("pairwise", turns="all")
    ArenaTextFormatter(layout='pair', max_tokens=256,
                       tokenizer='gemma-pref:default', turns='all')
    >>> make_recipe_formatter("pairwise", budget=False)
    ArenaTextFormatter(layout='pair')
    >>> make_recipe_formatter("finetune", "/models/gemma-2-9b", max_length=2048)
    ArenaTextFormatter(max_tokens=2048, template='auto',
                       tokenizer='/models/gemma-2-9b')
    >>> make_recipe_formatter("pairwise", "/models/Qwen2.5-7B-Instruct", max_length=64, budget=True)
    ArenaTextFormatter(layout='pair', max_tokens=64, template='auto',
                       tokenizer='/models/Qwen2.5-7B-Instruct')
    """
    recipe = check_recipe(recipe, "make_recipe_formatter")
    if recipe == "structure":
        raise ValueError(
            "recipe='structure' reads the raw rows (ArenaStructureFeatures): it has no "
            "text formatter."
        )
    if budget is None:
        budget = recipe in ("pairwise", "finetune")
    elif not isinstance(budget, bool):
        raise TypeError(
            f"The 'budget' parameter of make_recipe_formatter must be True, False or "
            f"None; got {budget!r}."
        )
    if model_name_or_path is not None and "template" not in params:
        # the checkpoint's own chat template, unless it is Gemma's (or none)
        params["template"] = "auto"
        params.setdefault("tokenizer", os.fspath(model_name_or_path))
    if budget:
        from ..backend.default_model import DEFAULT_MODEL

        if max_length is None:
            max_length = (
                PAIRWISE_DEFAULTS["max_length"] if RECIPE_LAYOUTS[recipe] == "pair" else 1024
            )
        params.setdefault("max_tokens", max_length)
        params.setdefault(
            "tokenizer",
            DEFAULT_MODEL if model_name_or_path is None else os.fspath(model_name_or_path),
        )
    return ArenaTextFormatter(layout=RECIPE_LAYOUTS[recipe], **params)


class PromptGroupedPipeline(Pipeline):
    """A ``Pipeline`` of arena rows whose final classifier gets their prompt groups.

    ``fit(X, y)`` computes :func:`~gemma_pref.evaluation.prompt_groups` of the raw rows
    (read by the first step's ``cell_format`` when it is an
    :class:`ArenaTextFormatter`) and passes them to the last step's ``fit``
    as ``groups`` when it takes them (:class:`PairDifferenceClassifier`, the
    search of :func:`make_logreg_classifier`), so that a ``C`` chosen inside
    ``fit`` is chosen on folds that never split a prompt, as in
    ``cross_val_score(pipe, df, y, cv=PromptGroupKFold(5))``, with no extra
    argument. ``groups`` passed explicitly (``classifier__groups=...``) win.
    Everything else is scikit-learn's ``Pipeline``; the recipes
    ``"embedding"`` and ``"seed"`` build one.

    Examples
    --------
    >>> from gemma_pref import make_preference_pipeline
    >>> type(make_preference_pipeline("/models/gemma-2-9b", recipe="embedding")).__name__
    'PromptGroupedPipeline'
    """

    def fit(self, X: Any, y: Any = None, **params: Any) -> PromptGroupedPipeline:
        """Fit every step; the last one with the rows' prompt groups.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows.
        y : array-like of shape (n_rows,)
            Labels.
        **params
            As for ``Pipeline.fit``.

        Returns
        -------
        self : PromptGroupedPipeline
        """
        super().fit(X, y, **self._with_groups(X, params))
        return self

    def _with_groups(self, X: Any, params: dict[str, Any]) -> dict[str, Any]:
        from ..evaluation.model_selection import prompt_groups
        from ..models.pairwise import accepts_groups

        name, last = self.steps[-1]
        if f"{name}__groups" in params or last in (None, "passthrough"):
            return params
        if not accepts_groups(last):
            return params
        first = self.steps[0][1]
        cell_format = first.cell_format if isinstance(first, ArenaTextFormatter) else "auto"
        return {**params, f"{name}__groups": prompt_groups(X, cell_format=cell_format)}
