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

from ._base import fit_context
from ._symmetric import class_swap
from .schema import check_labels, swap_labels

__all__ = ["DEFAULT_CS", "PairDifferenceClassifier", "make_logreg_classifier"]


def _lrcv_l2_params() -> dict[str, Any]:
    """Plain L2 in LogisticRegressionCV, without the deprecation warnings of 1.8+."""
    import sklearn

    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return {"l1_ratios": (0.0,), "use_legacy_attributes": False}
    return {}


_LRCV_L2 = _lrcv_l2_params()


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


def make_logreg_classifier(C: float | None = None, *, Cs: Any = DEFAULT_CS) -> Any:
    """``StandardScaler`` + multinomial ``LogisticRegression``, as one pipeline.

    Parameters
    ----------
    C : float or None, default=None
        Inverse regularisation strength. ``None``: chosen among ``Cs`` at each
        fit by ``LogisticRegressionCV`` (plain L2, 5 stratified folds, log
        loss, the ``C`` with the best mean score, refit on all rows).
    Cs : sequence of float, default=DEFAULT_CS
        Candidates when ``C`` is ``None``.

    Returns
    -------
    classifier : sklearn.pipeline.Pipeline

    Examples
    --------
    >>> make_logreg_classifier(0.01)[-1]
    LogisticRegression(C=0.01, max_iter=5000)
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if C is not None:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    search = LogisticRegressionCV(
        Cs=list(Cs), cv=5, scoring="neg_log_loss", max_iter=5000, **_LRCV_L2
    )
    return make_pipeline(StandardScaler(), search)


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
        all rows), each row kept in the same fold as its swapped copy. Frozen
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
    def fit(self, X: Any, y: Any) -> PairDifferenceClassifier:
        """Fit on the differences and their negations (labels swapped).

        Parameters
        ----------
        X : array-like of shape (n_rows, 2 * width)
            ``[e_a | e_b]`` per row.
        y : array-like of shape (n_rows,)
            0 (model_a wins), 1 (model_b wins), 2 (tie).

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
        if self.estimator is not None:
            self.estimator_ = clone(self.estimator).fit(D, Y)
            self.C_ = None
        else:
            self.estimator_, self.C_ = self._search(D, Y, len(d))
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def _search(self, D: np.ndarray, Y: np.ndarray, n: int) -> tuple[Any, float]:
        from sklearn.model_selection import GridSearchCV

        Cs = [float(c) for c in self.Cs]
        if not Cs or min(Cs) <= 0:
            raise ValueError(
                f"The 'Cs' parameter of PairDifferenceClassifier must be positive "
                f"floats; got {self.Cs!r}."
            )
        # a row and its swapped copy always fall in the same fold
        groups = np.concatenate([np.arange(n), np.arange(n)])
        folds = list(GroupKFold(n_splits=min(self.cv, n)).split(D, Y, groups))
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
        return search.best_estimator_, float(search.best_params_[f"{step}__C"])

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
