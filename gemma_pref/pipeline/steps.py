# SPDX-License-Identifier: Apache-2.0
"""Find and set the model steps of a pipeline, whatever wraps them.

A fitted pipeline holds its :class:`~gemma_pref.GemmaEmbedder` or
:class:`~gemma_pref.GemmaPreferenceClassifier` somewhere inside: a step of a
``Pipeline``, a transformer of a ``FeatureUnion``, the ``estimator`` of a
:class:`~gemma_pref.SwapABClassifier` and its fitted clone ``estimator_``.
:func:`model_steps` finds every one of them without knowing the wrappers,
and :func:`set_model_params` changes where and how they run (devices,
quantization, dtype, batch sizes) on a loaded pipeline, for instance to
predict on two GPUs with a pipeline fitted on one, without spelling
``estimator__classifier__devices``.
"""

from __future__ import annotations

from typing import Any

from ..embedding.embedder import GemmaEmbedder
from ..models.finetune import GemmaPreferenceClassifier

__all__ = ["find_steps", "model_steps", "set_model_params", "text_formatters"]

_MODEL_CLASSES = (GemmaEmbedder, GemmaPreferenceClassifier)


def _is_estimator(obj: Any) -> bool:
    return hasattr(obj, "get_params") and not isinstance(obj, type)


def model_steps(estimator: Any) -> list[Any]:
    """Every GemmaEmbedder and GemmaPreferenceClassifier inside ``estimator``.

    See :func:`find_steps`, of which this is the model classes' search.

    Examples
    --------
    >>> from gemma_pref import GemmaEmbedder, SwapABClassifier, make_preference_pipeline
    >>> from gemma_pref.pipeline.steps import model_steps
    >>> pipe = make_preference_pipeline("/models/gemma-2-9b", recipe="finetune",
    ...                                 swap_augment=True)
    >>> [type(m).__name__ for m in model_steps(pipe)]
    ['GemmaPreferenceClassifier']
    """
    return find_steps(estimator, _MODEL_CLASSES)


def text_formatters(estimator: Any) -> list[Any]:
    """Every :class:`~gemma_pref.ArenaTextFormatter` inside ``estimator``
    (see :func:`find_steps`): the template and the fitted copy of a wrapper.

    Examples
    --------
    >>> from gemma_pref import make_preference_pipeline
    >>> from gemma_pref.pipeline.steps import text_formatters
    >>> [f.layout for f in text_formatters(make_preference_pipeline("/models/gemma-2-9b"))]
    ['pair']
    """
    from ..text.formatting import ArenaTextFormatter

    return find_steps(estimator, (ArenaTextFormatter,))


def find_steps(estimator: Any, classes: tuple[type, ...]) -> list[Any]:
    """Every instance of ``classes`` inside ``estimator``.

    The search is generic: it follows every estimator-valued parameter
    (``get_params(deep=False)``: ``Pipeline`` steps, ``FeatureUnion``
    transformers, a meta-estimator's ``estimator``), lists, tuples and
    dicts of them (``(name, estimator)`` pairs), and the fitted attributes
    whose names end in ``_`` (``estimator_``, ``estimators_``, ...). Each
    model is listed once, in the order found.

    Parameters
    ----------
    estimator : estimator
        A model, or anything holding models (fitted or not).
    classes : tuple of type
        What to find.

    Returns
    -------
    steps : list
        The instances found (the estimator itself if it is one); empty if none.
    """
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
            return
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, classes):
            found.append(obj)
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
            return
        if isinstance(obj, dict):
            for item in obj.values():
                visit(item)
            return
        if not _is_estimator(obj):
            return
        try:
            params = obj.get_params(deep=False)
        except Exception:  # an estimator whose get_params needs more state
            params = {}
        for value in params.values():
            visit(value)
        for name, value in vars(obj).items():
            if name.endswith("_") and not name.startswith("_"):
                visit(value)

    visit(estimator)
    return found


def set_model_params(estimator: Any, **params: Any) -> Any:
    """Set ``params`` on every model step of ``estimator`` (see :func:`model_steps`).

    Every model found gets the same values: the unfitted template and its
    fitted clone alike, so that predictions use them. Nothing is set when a
    parameter is unknown to one of the models.

    Parameters
    ----------
    estimator : estimator
        A pipeline, a :class:`~gemma_pref.SwapABClassifier`, any wrapper of
        them, or a model itself.
    **params
        Parameters of the models, e.g. ``devices=["cuda:0", "cuda:1"]``,
        ``quantization="8bit"``, ``dtype="float16"``, ``backend``.

    Returns
    -------
    estimator : estimator
        The same object, changed in place.

    Raises
    ------
    ValueError
        When ``estimator`` holds no model, or a parameter is not one of a
        model's (naming it, the model class and the valid names).

    Examples
    --------
    >>> from gemma_pref import make_preference_pipeline
    >>> from gemma_pref.pipeline.steps import model_steps, set_model_params
    >>> pipe = make_preference_pipeline("/models/gemma-2-9b", swap_augment=True)
    >>> pipe = set_model_params(pipe, devices=["cuda:0", "cuda:1"], quantization="8bit")
    >>> [m.devices for m in model_steps(pipe)]
    [['cuda:0', 'cuda:1']]
    """
    steps = model_steps(estimator)
    if not steps:
        raise ValueError(
            f"{type(estimator).__name__} holds no GemmaEmbedder or "
            "GemmaPreferenceClassifier: nothing to set "
            f"{', '.join(sorted(params)) or 'parameters'} on."
        )
    for step in steps:
        valid = step.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not a parameter of {type(step).__name__} (found in "
                f"{type(estimator).__name__}); its parameters are: {', '.join(sorted(valid))}."
            )
    for step in steps:
        step.set_params(**params)
    return estimator
