# SPDX-License-Identifier: Apache-2.0
"""Preference from the difference of the two answers' embeddings.

The reference recipe embeds one text that holds the prompt and both answers and
averages its token states: the mean mixes answer A and answer B into one vector
in which little says which answer is which. Embedding each answer with its prompt
(``ArenaTextFormatter(layout="pair")``) and classifying the difference
``e(prompt, A) - e(prompt, B)`` asks the question directly. The difference is
antisymmetric: swapping the answers negates it, so
:class:`PairDifferenceClassifier` trains on both signs (with labels 0 and 1
exchanged) and averages both at prediction time, which makes swapping the
answers of a row swap its predicted probabilities exactly.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import GroupKFold
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import fit_context
from ..data.schema import check_labels, swap_labels
from ._symmetric import class_swap

__all__ = [
    "DEFAULT_CS",
    "GroupsOrStratifiedKFold",
    "PairDifferenceClassifier",
    "accepts_groups",
    "make_logreg_classifier",
]


def neg_log_loss_of_every_class(estimator: Any, X: Any, y: Any) -> float:
    """``neg_log_loss`` in float64 over the classes of the model and of ``y``
    (a class a fold's model never saw gets probability 1e-15): a search's
    scorer that float32 features and folds without a class do not break."""
    from sklearn.metrics import log_loss

    classes = np.asarray(estimator.classes_)
    labels = np.union1d(classes, np.unique(y))
    proba = np.full((len(y), len(labels)), 1e-15)
    proba[:, np.searchsorted(labels, classes)] = np.asarray(
        estimator.predict_proba(X), dtype=np.float64
    )
    proba /= proba.sum(axis=1, keepdims=True)
    return -float(log_loss(y, proba, labels=labels))


def _neg_log_loss_over(classes: np.ndarray) -> Any:
    """``neg_log_loss`` over all ``classes``, also for a fold whose training
    rows lack one (that class then gets probability 1e-15)."""
    from sklearn.metrics import log_loss

    def score(estimator: Any, X: Any, y: Any) -> float:
        proba = np.full((len(y), len(classes)), 1e-15)
        proba[:, np.searchsorted(classes, estimator.classes_)] = estimator.predict_proba(X)
        proba /= proba.sum(axis=1, keepdims=True)
        return -float(log_loss(y, proba, labels=classes))

    return score


#: Inverse regularisation strengths searched by default (log-spaced).
DEFAULT_CS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


class GroupsOrStratifiedKFold:
    """Stratified k-fold that keeps each group in one fold when groups are given.

    The inner splitter of :func:`make_logreg_classifier`'s search:
    ``StratifiedGroupKFold`` over ``groups`` (pass the prompt groups of the
    rows, :func:`~gemma_pref.evaluation.prompt_groups`, so that no prompt is on both
    sides of a fold), plain ``StratifiedKFold`` without them.

    Parameters
    ----------
    n_splits : int, default=5

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1] * 6)
    >>> groups = np.repeat(np.arange(6), 2)
    >>> folds = GroupsOrStratifiedKFold(3).split(np.zeros((12, 1)), y, groups)
    >>> all(set(groups[a]).isdisjoint(groups[b]) for a, b in folds)
    True
    """

    def __init__(self, n_splits: int = 5) -> None:
        self.n_splits = n_splits

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        if groups is None:
            return StratifiedKFold(self.n_splits).split(X, y)
        return StratifiedGroupKFold(self.n_splits).split(X, y, groups)

    def __repr__(self) -> str:
        return f"GroupsOrStratifiedKFold(n_splits={self.n_splits})"


def make_logreg_classifier(C: float | None = None, *, Cs: Any = DEFAULT_CS) -> Any:
    """``StandardScaler`` + multinomial ``LogisticRegression``; ``C`` fixed or searched.

    Parameters
    ----------
    C : float or None, default=None
        Inverse regularisation strength. ``None``: chosen among ``Cs`` at each
        fit by 5-fold cross-validated log loss (the scaler fitted inside each
        fold, the best ``C`` refitted on all rows): a ``GridSearchCV`` whose
        folds keep each group in one fold when ``fit`` is given ``groups``
        (the recipes' pipelines pass the rows' prompt groups), stratified
        folds otherwise (:class:`GroupsOrStratifiedKFold`). The chosen ``C``
        is ``best_params_["logisticregression__C"]``.
    Cs : sequence of float, default=DEFAULT_CS
        Candidates when ``C`` is ``None``.

    Returns
    -------
    classifier : sklearn.pipeline.Pipeline or sklearn.model_selection.GridSearchCV

    Examples
    --------
    >>> make_logreg_classifier(0.01)[-1]
    LogisticRegression(C=0.01, max_iter=5000)
    >>> make_logreg_classifier().cv
    GroupsOrStratifiedKFold(n_splits=5)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if C is not None:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    return GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": [float(c) for c in Cs]},
        cv=GroupsOrStratifiedKFold(5),
        scoring=neg_log_loss_of_every_class,
        error_score="raise",
    )


def accepts_groups(estimator: Any) -> bool:
    """Whether ``estimator.fit`` takes ``groups`` (a search passes them to its folds)."""
    import inspect

    from sklearn.model_selection._search import BaseSearchCV

    if isinstance(estimator, BaseSearchCV):
        return True
    fit = getattr(estimator, "fit", None)
    try:
        return fit is not None and "groups" in inspect.signature(fit).parameters
    except (TypeError, ValueError):
        return False


class PairDifferenceClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Classify a preference from ``e(A) - e(B)``, symmetric under swapping A and B.

    ``X`` holds the two answers' vectors side by side, as
    :class:`~gemma_pref.GemmaEmbedder` returns them for
    ``ArenaTextFormatter(layout="pair")``: columns ``[e_a | e_b]``. The features
    are ``d = e_a - e_b``. ``fit`` trains on ``d`` with the labels and on ``-d``
    with labels 0 (model_a wins) and 1 (model_b wins) exchanged;
    ``predict_proba`` averages the prediction for ``d`` and the mapped-back
    prediction for ``-d``.

    Parameters
    ----------
    estimator : classifier or None, default=None
        Classifier of the differences. ``None``: ``StandardScaler`` and a
        multinomial ``LogisticRegression`` whose ``C`` is chosen among ``Cs``
        by ``cv``-fold cross-validated log loss (the scaler is fitted inside
        each fold; the ``C`` with the best mean score wins and is refitted on
        all rows), each prompt group passed to ``fit`` in one fold (else each
        row), always with its swapped copy. Frozen
        embeddings of a few thousand rows need strong regularisation, and how
        much depends on the data size: the search takes that choice away from
        the user.
    Cs : sequence of float, default=DEFAULT_CS
        Candidate inverse regularisation strengths (``estimator=None`` only).
    cv : int, default=5
        Folds of the search (``estimator=None`` only).

    Attributes
    ----------
    estimator_ : classifier
        The fitted classifier of the differences.
    classes_ : ndarray of shape (n_classes,)
        ``[0, 1, 2]`` (or ``[0, 1]`` when ``y`` holds no tie).
    C_ : float or None
        The ``C`` of the final fit: the candidate with the best mean
        cross-validated log loss (``None`` when ``estimator`` is given).
    cv_log_loss_ : ndarray of shape (len(Cs),) or None
        The mean cross-validated log loss of each candidate in ``Cs``, in
        their order, on the folds of the search (``None`` when ``estimator``
        is given).
    n_features_in_ : int
        Columns of ``X``: twice the embedding width.
    feature_names_in_ : ndarray of str
        Column names of ``X``, when it is a DataFrame with string column names.

    See Also
    --------
    ArenaTextFormatter : ``layout="pair"`` gives one text per answer.
    SwapABClassifier : The same symmetry for any classifier of raw rows.

    Examples
    --------
    >>> import numpy as np
    >>> from gemma_pref import PairDifferenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> quality = rng.normal(size=(300, 2))          # a hidden score per answer
    >>> X = np.hstack([quality[:, :1] + rng.normal(size=(300, 4)),
    ...                quality[:, 1:] + rng.normal(size=(300, 4))])
    >>> y = np.where(np.abs(quality[:, 0] - quality[:, 1]) < 0.3, 2,
    ...              (quality[:, 1] > quality[:, 0]).astype(int))
    >>> clf = PairDifferenceClassifier().fit(X, y)
    >>> p = clf.predict_proba(X[:2])
    >>> swapped = clf.predict_proba(np.hstack([X[:2, 4:], X[:2, :4]]))
    >>> bool(np.allclose(swapped, p[:, [1, 0, 2]]))
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "Cs": ["array-like"],
        "cv": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(
        self,
        estimator: Any = None,
        *,
        Cs: Any = DEFAULT_CS,
        cv: int = 5,
    ) -> None:
        self.estimator = estimator
        self.Cs = Cs
        self.cv = cv

    def _differences(self, X: Any, *, reset: bool) -> np.ndarray:
        X = validate_data(self, X, reset=reset, dtype=np.float64)
        if X.shape[1] % 2:
            raise ValueError(
                "PairDifferenceClassifier expects the two answers' vectors side by "
                "side (an even number of columns: GemmaEmbedder on "
                "ArenaTextFormatter(layout='pair')); got X of shape "
                f"{X.shape}."
            )
        half = X.shape[1] // 2
        return X[:, :half] - X[:, half:]

    @fit_context(prefer_skip_nested_validation=False)  # estimator validates itself
    def fit(self, X: Any, y: Any, groups: Any = None) -> PairDifferenceClassifier:
        """Fit on the differences and their negations (labels swapped).

        Parameters
        ----------
        X : array-like of shape (n_rows, 2 * width)
            ``[e_a | e_b]`` per row.
        y : array-like of shape (n_rows,)
            0 (model_a wins), 1 (model_b wins), 2 (tie).
        groups : array-like of shape (n_rows,) or None, default=None
            The rows' prompt groups (:func:`~gemma_pref.evaluation.prompt_groups` of the
            arena rows): the search for ``C`` keeps each group in one fold,
            so that a prompt never sits on both sides (the recipes' pipelines
            pass them). ``None``: folds over rows, each row with its swapped
            copy. A given ``estimator`` that takes ``groups`` gets them too.

        Returns
        -------
        self : PairDifferenceClassifier
            The fitted classifier.
        """
        if y is None:
            raise ValueError(
                "PairDifferenceClassifier requires y to be passed, but the target y is None."
            )
        d = self._differences(X, reset=True)
        y = check_labels(y)
        if len(y) != len(d):
            raise ValueError(f"X has {len(d)} rows but y has {len(y)} labels.")
        D = np.vstack([d, -d])
        Y = np.concatenate([y, swap_labels(y)])
        if len(np.unique(Y)) < 2:
            raise ValueError(
                "PairDifferenceClassifier needs at least two classes in y and its "
                f"swapped labels; got only {int(Y[0])} (2 = tie)."
            )
        doubled = None
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(d),):
                raise ValueError(
                    f"groups has shape {groups.shape}; expected one group per row of X ({len(d)},)."
                )
            doubled = np.concatenate([groups, groups])  # a row and its swap: one group
        if self.estimator is not None:
            estimator = clone(self.estimator)
            if doubled is not None and accepts_groups(estimator):
                self.estimator_ = estimator.fit(D, Y, groups=doubled)
            else:
                self.estimator_ = estimator.fit(D, Y)
            self.C_ = None
            self.cv_log_loss_ = None
        else:
            self.estimator_, self.C_, self.cv_log_loss_ = self._search(D, Y, len(d), doubled)
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def _inner_folds(
        self, D: np.ndarray, Y: np.ndarray, n: int, groups: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The search's folds over the doubled rows: by ``groups`` when given
        (each prompt in one fold), else by row (a row with its swapped copy)."""
        if groups is None:
            groups = np.concatenate([np.arange(n), np.arange(n)])
        n_splits = min(self.cv, len(np.unique(groups)))
        return list(GroupKFold(n_splits=n_splits).split(D, Y, groups))

    def _search(
        self, D: np.ndarray, Y: np.ndarray, n: int, groups: np.ndarray | None = None
    ) -> tuple[Any, float, np.ndarray]:
        from sklearn.model_selection import GridSearchCV

        Cs = [float(c) for c in self.Cs]
        if not Cs or min(Cs) <= 0:
            raise ValueError(
                f"The 'Cs' parameter of PairDifferenceClassifier must be positive "
                f"floats; got {self.Cs!r}."
            )
        folds = self._inner_folds(D, Y, n, groups)
        base = make_logreg_classifier(Cs[0])
        step = base.steps[-1][0]
        search = GridSearchCV(
            base,
            {f"{step}__C": Cs},
            cv=folds,
            scoring=_neg_log_loss_over(np.unique(Y)),
            error_score="raise",
            refit=True,
        ).fit(D, Y)
        losses = -np.asarray(search.cv_results_["mean_test_score"], dtype=np.float64)
        return search.best_estimator_, float(search.best_params_[f"{step}__C"]), losses

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of model_a wins, model_b wins, tie; swap-symmetric.

        Parameters
        ----------
        X : array-like of shape (n_rows, 2 * width)
            ``[e_a | e_b]`` per row.

        Returns
        -------
        proba : ndarray of shape (n_rows, 3)
        """
        check_is_fitted(self)
        d = self._differences(X, reset=False)
        perm = class_swap(self.classes_)
        forward = self.estimator_.predict_proba(d)
        backward = self.estimator_.predict_proba(-d)[:, perm]
        return 0.5 * (forward + backward)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable label of each row.

        Parameters
        ----------
        X : array-like of shape (n_rows, 2 * width)

        Returns
        -------
        y_pred : ndarray of shape (n_rows,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
