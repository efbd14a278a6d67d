# SPDX-License-Identifier: Apache-2.0
"""Logistic regression that is exactly symmetric under swapping answers A and B.

Private to the package (used by :mod:`gemma_pref.models.blend`, and
:func:`class_swap` by :mod:`gemma_pref.models.pairwise`). A design matrix whose
columns map onto each other under the swap, ``swap(x) = x[index] * sign``, is
classified by a scaled multinomial logistic regression trained on the rows and
their swapped copies (labels 0 and 1 exchanged); a prediction averages the
row's probabilities with the mapped-back probabilities of its swapped copy, so
swapping A and B swaps the predicted probabilities of A and B exactly.

:func:`out_of_fold` runs that model over a grid of ``C`` on given folds and
returns every candidate's out-of-fold probabilities, from which the caller
chooses ``C`` (and a blend weight) without a second pass over the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.schema import SWAPPED_LABEL, swap_labels

__all__ = [
    "SwapMap",
    "class_swap",
    "fit_symmetric",
    "log_loss_of",
    "out_of_fold",
    "predict_symmetric",
]


@dataclass(frozen=True)
class SwapMap:
    """``swap(x) = x[:, index] * sign`` for the columns of one design matrix."""

    index: np.ndarray
    sign: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.index] * self.sign


def class_swap(classes: np.ndarray) -> np.ndarray:
    """Column of ``classes`` holding the swapped label of each column."""
    position = {int(c): j for j, c in enumerate(classes)}
    return np.asarray([position[SWAPPED_LABEL[int(c)]] for c in classes])


def _doubled(X: np.ndarray, y: np.ndarray, swap: SwapMap) -> tuple[np.ndarray, np.ndarray]:
    return np.vstack([X, swap.apply(X)]), np.concatenate([y, swap_labels(y)])


def _model(C: float, **params: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, **params))


def fit_symmetric(X: np.ndarray, y: np.ndarray, swap: SwapMap, C: float) -> Any:
    """Scaler + multinomial logistic regression on ``X`` and its swapped copy."""
    return _model(C).fit(*_doubled(X, y, swap))


def predict_symmetric(model: Any, X: np.ndarray, swap: SwapMap) -> np.ndarray:
    """Average of the row's and its swapped copy's (mapped back) probabilities."""
    perm = class_swap(model.classes_)
    forward = model.predict_proba(X)
    backward = model.predict_proba(swap.apply(X))[:, perm]
    return 0.5 * (forward + backward)


def out_of_fold(
    X: np.ndarray,
    y: np.ndarray,
    swap: SwapMap,
    Cs: Sequence[float],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray,
) -> np.ndarray:
    """Out-of-fold probabilities of every ``C``: shape ``(len(Cs), n_rows, n_classes)``.

    Each fold fits its own scaler, then the regularisation path from the
    smallest ``C`` up, each fit starting from the previous solution (the same
    optimum, found in fewer iterations). A training fold whose labels lack a
    class (possible with few rows) gives that class probability 1e-15 on its
    test rows.
    """
    order = np.argsort(Cs)
    oof = np.full((len(Cs), len(y), len(classes)), 1e-15)
    for train, test in folds:
        model = _model(float(Cs[order[0]]), warm_start=True)
        scaler, linear = model[0], model[-1]
        Xt, yt = _doubled(X[train], y[train], swap)
        Zt = scaler.fit_transform(Xt)
        for k in order:
            linear.set_params(C=float(Cs[k])).fit(Zt, yt)
            columns = np.searchsorted(classes, linear.classes_)
            oof[k][np.ix_(test, columns)] = predict_symmetric(model, X[test], swap)
    oof /= oof.sum(axis=2, keepdims=True)
    return oof


def log_loss_of(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean log loss of ``proba`` (columns follow ``classes``), clipped at 1e-15."""
    columns = np.searchsorted(classes, y)
    picked = np.clip(proba[np.arange(len(y)), columns], 1e-15, 1.0)
    return float(-np.log(picked).mean())
