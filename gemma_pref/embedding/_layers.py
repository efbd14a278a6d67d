# SPDX-License-Identifier: Apache-2.0
"""The ``layer`` parameter of :class:`~gemma_pref.embedding.GemmaEmbedder`: its check and plan.

:func:`check_layer` checks its type; :func:`layer_plan` resolves it on a model of a given
depth into the hidden states pooled and the decoder layers run.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

__all__ = ["check_layer", "is_index_or_fraction", "layer_plan"]


def is_index_or_fraction(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, Real):
        return False
    return isinstance(v, Integral) or 0.0 < float(v) < 1.0


def check_layer(value: Any) -> None:
    """The type of ``layer``: an int, a fraction of the depth in (0, 1), or a
    non-empty range, list or tuple of ints.

    The range of the indices depends on the model; :func:`layer_plan` checks it.
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        return
    if isinstance(value, Real) and not isinstance(value, bool):
        if 0.0 < float(value) < 1.0:
            return
        raise InvalidParameterError(
            "The 'layer' parameter of GemmaEmbedder, given as a float, is a fraction of "
            f"the model's depth strictly between 0 and 1 (0.5: the middle layer). Got "
            f"{value!r} instead."
        )
    if isinstance(value, (range, list, tuple)):
        bad = [v for v in value if not is_index_or_fraction(v)]
        if len(value) and not bad:
            return
        why = (
            "it is empty" if not len(value) else f"{bad[0]!r} is not an int or a fraction in (0, 1)"
        )
    else:
        why = f"a {type(value).__name__}"
    raise InvalidParameterError(
        "The 'layer' parameter of GemmaEmbedder must be an int (an index into the "
        "model's hidden states, -1 for the last), a float in (0, 1) (that fraction of "
        "the depth) or a non-empty range, list or tuple of them (those states "
        f"averaged). Got {value!r} instead ({why})."
    )


def layer_plan(
    value: Any, n_layers: int | None, model: str
) -> tuple[tuple[int, ...] | None, int | None]:
    """``(layers, decoder_layers)`` for the ``layer`` parameter on a model of
    ``n_layers`` decoder layers.

    ``layers``: the sorted non-negative indices into ``hidden_states`` to
    average, or ``None`` for the last hidden state alone (as ``layer=-1``,
    so that the vectors and cache keys are those of the default).
    ``decoder_layers``: how many decoder layers run (at least one), ``None``
    for all of them.
    """
    indices = list(value) if isinstance(value, (range, list, tuple)) else [value]
    if indices == [-1]:
        return None, None
    fractions = any(not isinstance(i, Integral) for i in indices)
    if n_layers is None:
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder selects a hidden state by index "
            f"(got {value!r}), but the configuration of {model} has no "
            "num_hidden_layers; use layer=-1."
        )
    if fractions:  # that share of the depth, at least the first layer's output
        indices = [
            i if isinstance(i, Integral) else max(1, min(n_layers, round(float(i) * n_layers)))
            for i in indices
        ]
        # fractions of a shallow model may round to one state: each counts once
        indices = list(dict.fromkeys(indices))
    low, high = -(n_layers + 1), n_layers
    bad = [int(i) for i in indices if not low <= i <= high]
    if bad:
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder must be an index in [{low}, {high}] "
            f"for {model}, which has {n_layers} decoder layers (0: the embedding output, "
            f"i: the output of decoder layer i, {n_layers} or -1: the last layer after "
            "the final norm), or a non-empty range, list or tuple of such indices. Got "
            f"{value!r} instead ({bad[0]} is out of range)."
        )
    resolved = [int(i) % (n_layers + 1) for i in indices]
    if len(set(resolved)) != len(resolved):
        twice = next(i for i in resolved if resolved.count(i) > 1)
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder names hidden state {twice} twice "
            f"(got {value!r}; negative indices count back from -1, hidden state "
            f"{n_layers}); give each state once."
        )
    layers = tuple(sorted(resolved))
    if layers == (n_layers,):
        return None, None
    run = max(1, layers[-1])
    return layers, (None if run >= n_layers else run)
