# SPDX-License-Identifier: Apache-2.0
"""A/B swap augmentation: swapped training copies and swapped test-time averaging.

Which answer is shown as "A" carries no information about the better answer, so
a model should give row ``x`` and its swapped twin the same prediction with
classes 0 and 1 exchanged. :func:`swap_ab` swaps the raw rows,
:func:`swap_labels` the labels, and :class:`SwapABClassifier` wraps any
classifier whose input is the raw arena DataFrame (a pipeline that starts with
:class:`~gemma_pref.ArenaTextFormatter`,
:class:`~gemma_pref.text.features.ArenaStructureFeatures` or a ``FeatureUnion`` of
both) to train on both orders and to average its predictions over both orders.
This module never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from .._base import TextInputMixin, VersionedPickleMixin, fit_context
from ..data.schema import (
    SWAP_COLUMN_PAIRS,
    SWAPPED_LABEL,
    check_arena_frame,
    check_labels,
    swap_labels,
)

__all__ = ["SwapABClassifier", "answer_column_pairs", "swap_ab"]


def answer_column_pairs(columns: Any) -> list[tuple[str, str]]:
    """The ``(<name>_a, <name>_b)`` pairs of ``columns``: what swapping the answers exchanges.

    Examples
    --------
    >>> answer_column_pairs(["id", "response_a", "response_b", "score_a", "score_b", "lang_a"])
    [('response_a', 'response_b'), ('score_a', 'score_b')]
    """
    names = [c for c in columns if isinstance(c, str)]
    present = set(names)
    return [(c, c[:-2] + "_b") for c in names if c.endswith("_a") and c[:-2] + "_b" in present]


def swap_ab(X: Any) -> pd.DataFrame:
    """Return a copy of arena rows with the two answers exchanged.

    Exchanges every pair of columns named ``<name>_a`` and ``<name>_b``:
    ``response_a`` with ``response_b``, ``model_a`` with ``model_b``,
    ``winner_model_a`` with ``winner_model_b``, and any other per-answer pair
    (``score_a`` / ``score_b``, as :func:`~gemma_pref.read_preferences`
    makes them from chosen/rejected pairs), and the values ``"model_a"`` and
    ``"model_b"`` of a ``winner`` column (so
    ``labels_from_winner(swap_ab(df))`` equals
    ``swap_labels(labels_from_winner(df))``). Other columns, the index and
    the column order are kept. Swapping twice gives the original rows back.

    Parameters
    ----------
    X : pandas.DataFrame or mapping
        Arena rows; must hold ``response_a`` and ``response_b``.

    Returns
    -------
    swapped : pandas.DataFrame
        A new frame; ``X`` is not modified.

    Raises
    ------
    ValueError
        When ``response_a`` or ``response_b`` is missing, or only one column of
        ``model_a`` / ``model_b`` or ``winner_model_a`` / ``winner_model_b``
        is present (naming it).

    See Also
    --------
    swap_labels : The matching labels.
    SwapABClassifier : Train and predict on both orders.

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref.models.augmentation import swap_ab
    >>> df = pd.DataFrame({"prompt": ['["Hi"]'], "response_a": ['["Hello"]'],
    ...                    "response_b": ['["Hey"]'], "model_a": ["m1"],
    ...                    "model_b": ["m2"], "score_a": ["9"], "score_b": ["2"]})
    >>> swap_ab(df).iloc[0].tolist()
    ['["Hi"]', '["Hey"]', '["Hello"]', 'm2', 'm1', '2', '9']
    """
    X = check_arena_frame(X, "swap_ab", required=("response_a", "response_b"))
    for left, right in SWAP_COLUMN_PAIRS:
        present = [c for c in (left, right) if c in X.columns]
        if len(present) == 1:
            missing = right if present[0] == left else left
            raise ValueError(
                f"swap_ab: column {present[0]!r} has no partner {missing!r} to swap "
                "with; expected both or neither. Got columns "
                f"{list(map(str, X.columns))}."
            )
    mapping = {}
    for left, right in answer_column_pairs(X.columns):
        mapping[left], mapping[right] = right, left
    # rename, then restore the column order: values move, positions stay
    swapped = X.rename(columns=mapping)[list(X.columns)].copy()
    if "winner" in X.columns:  # WSDM and LMArena labels: model_a and model_b exchange
        swapped["winner"] = X["winner"].map(
            lambda w: (
                {"model_a": "model_b", "model_b": "model_a"}.get(w, w) if isinstance(w, str) else w
            )
        )
    return swapped


class SwapABClassifier(
    TextInputMixin, VersionedPickleMixin, ClassifierMixin, MetaEstimatorMixin, BaseEstimator
):
    """Train on both answer orders and average predictions over both orders.

    Wraps a classifier of raw arena rows (for example
    ``make_preference_pipeline(...)`` or a pipeline starting with
    :class:`~gemma_pref.text.features.ArenaStructureFeatures`). With
    ``augment=True``, ``fit`` trains a clone of it on the rows plus their
    A/B-swapped copies (:func:`swap_ab`) with swapped labels
    (:func:`swap_labels`). With ``tta=True``, ``predict_proba`` averages the
    prediction on each row with the prediction on its swapped copy, columns
    for model_a and model_b exchanged, so that swapping the answers of a row
    exactly swaps its predicted probabilities.

    Parameters
    ----------
    estimator : estimator object
        A classifier whose input is the raw arena DataFrame, fitted on labels
        0 (model_a wins), 1 (model_b wins), 2 (tie).
    augment : bool, default=True
        Add the swapped copies of the training rows at ``fit``: twice the
        rows, swapped copies after the originals, index labels kept.
    tta : bool, default=True
        Test-time augmentation: average over both orders in
        ``predict_proba`` and ``predict``.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted clone of ``estimator``.
    classes_ : ndarray of shape (n_classes,)
        The labels, from ``estimator_``.

    See Also
    --------
    swap_ab : Swap the answers of arena rows.
    ArenaTextFormatter : Its ``swap`` parameter is a fixed view, not augmentation.

    Notes
    -----
    The swap happens on the raw DataFrame, before any step of ``estimator``,
    so every branch (formatted text, structure features, ``model_a`` /
    ``model_b`` columns) sees the same swapped row. An
    ``ArenaTextFormatter(swap=True)`` inside ``estimator`` keeps working: it
    swaps whatever rows it receives. Inside ``cross_val_score`` the swapped
    copies are made from the training folds only, so no test row leaks into
    training. ``GemmaEmbedder``'s cache means the swapped texts embedded at
    ``fit`` are not embedded again by ``tta`` on the same rows.

    With ``tta=True`` the classes must be closed under the swap (0 and 1 both
    present, or neither): ``augment=True`` guarantees it. Fit parameters
    (such as ``sample_weight``) are not forwarded.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from gemma_pref import load_arena_sample
    >>> from gemma_pref.data import labels_from_winner
    >>> from gemma_pref.models.augmentation import SwapABClassifier, swap_ab
    >>> from gemma_pref.text.features import ArenaStructureFeatures
    >>> df = load_arena_sample()
    >>> y = labels_from_winner(df)
    >>> clf = SwapABClassifier(make_pipeline(
    ...     ArenaStructureFeatures(), StandardScaler(), LogisticRegression(C=0.01)))
    >>> proba = clf.fit(df, y).predict_proba(df.head(2))
    >>> proba.shape
    (2, 3)
    >>> bool((clf.predict_proba(swap_ab(df.head(2))) == proba[:, [1, 0, 2]]).all())
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "augment": ["boolean"],
        "tta": ["boolean"],
    }

    def __init__(self, estimator: Any, *, augment: bool = True, tta: bool = True) -> None:
        self.estimator = estimator
        self.augment = augment
        self.tta = tta

    @fit_context(prefer_skip_nested_validation=False)  # estimator validates itself
    def fit(self, X: Any, y: Any) -> SwapABClassifier:
        """Fit a clone of ``estimator``, on swapped copies too if ``augment``.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows with ``response_a`` and ``response_b`` (and whatever
            ``estimator`` needs).
        y : array-like of shape (n_rows,)
            Labels 0 (model_a wins), 1 (model_b wins), 2 (tie).

        Returns
        -------
        self : SwapABClassifier
            The fitted meta-estimator.
        """
        X = check_arena_frame(X, type(self).__name__, required=("response_a", "response_b"))
        y = check_labels(y)
        if len(y) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)} labels; expected one label per row."
            )
        if self.augment:
            X = pd.concat([X, swap_ab(X)])
            y = np.concatenate([y, swap_labels(y)])
        estimator = clone(self.estimator).fit(X, y)
        classes = np.asarray(estimator.classes_)
        if self.tta:
            self._swap_permutation(classes)  # fail at fit, not at predict
        self.estimator_ = estimator
        self.classes_ = classes
        return self

    @staticmethod
    def _swap_permutation(classes: np.ndarray) -> np.ndarray:
        """Column of ``classes`` holding the swapped label of each column."""
        position = {int(c): j for j, c in enumerate(classes)}
        try:
            return np.asarray([position[SWAPPED_LABEL[int(c)]] for c in classes])
        except KeyError:
            raise ValueError(
                "SwapABClassifier(tta=True) needs the labels 0 (model_a wins) and 1 "
                "(model_b wins) both present in y, or neither, so that the swapped "
                f"predictions can be mapped back; the fitted classes are "
                f"{classes.tolist()}. Use augment=True, or tta=False."
            ) from None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, averaged over both answer orders if ``tta``.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows, as for :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes)
            Columns follow ``classes_`` (model_a, model_b, tie for 0, 1, 2).
        """
        check_is_fitted(self)
        X = check_arena_frame(X, type(self).__name__, required=("response_a", "response_b"))
        proba = np.asarray(self.estimator_.predict_proba(X), dtype=np.float64)
        if not self.tta:
            return proba
        swapped = np.asarray(self.estimator_.predict_proba(swap_ab(X)), dtype=np.float64)
        return 0.5 * (proba + swapped[:, self._swap_permutation(self.classes_)])

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row (from :meth:`predict_proba` if ``tta``).

        Parameters
        ----------
        X : pandas.DataFrame
            The rows to label; the columns :meth:`fit` needed.

        Returns
        -------
        y_pred : ndarray of shape (n_rows,)
            Labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
        """
        check_is_fitted(self)
        if not self.tta:
            return self.estimator_.predict(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
