# SPDX-License-Identifier: Apache-2.0
"""Scores and cross-validation of preference models on arena rows.

:func:`preference_scores` is how gemma-pref scores probabilities (log loss,
the competition's metric, and accuracy). :func:`cross_validate_preference`
runs k-fold cross-validation of any estimator of raw arena rows, grouped by
prompt by default, and returns a :class:`CVReport` with the per-fold scores
and times and the out-of-fold probabilities. ``gemma-pref cv`` and the
quality benchmark both run it. This module never imports torch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CVReport",
    "FoldResult",
    "cross_validate_preference",
    "cv_splits",
    "preference_scores",
]


def preference_scores(y: Any, proba: Any) -> dict[str, float]:
    """Log loss and accuracy of 3-class probabilities.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
    proba : array-like of shape (n_rows, 3)
        Probabilities in that column order.

    Returns
    -------
    scores : dict
        ``log_loss`` and ``accuracy``.

    Examples
    --------
    >>> s = preference_scores([0, 2], [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    >>> round(s["log_loss"], 4), s["accuracy"]
    (0.6931, 1.0)
    """
    from sklearn.metrics import accuracy_score, log_loss

    proba = np.asarray(proba, dtype=np.float64)
    return {
        "log_loss": float(log_loss(y, proba, labels=[0, 1, 2])),
        "accuracy": float(accuracy_score(y, np.argmax(proba, axis=1))),
    }


@dataclass
class FoldResult:
    """Scores and times of one fold."""

    fold: int
    rows: int
    log_loss: float
    accuracy: float
    fit_s: float
    predict_s: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class CVReport:
    """What :func:`cross_validate_preference` measured.

    Attributes
    ----------
    folds : list of FoldResult
    oof : ndarray of shape (n_rows, 3)
        Out-of-fold probabilities: each row predicted by the model that did
        not see it.
    y : ndarray of shape (n_rows,)
    grouped : bool
        Whether the folds were grouped by prompt.
    seconds : float
        Wall time of the whole loop.
    """

    folds: list[FoldResult]
    oof: np.ndarray
    y: np.ndarray
    grouped: bool
    seconds: float

    def _values(self, name: str) -> np.ndarray:
        return np.array([getattr(f, name) for f in self.folds], dtype=np.float64)

    @property
    def log_loss(self) -> float:
        """Mean log loss over the folds."""
        return float(self._values("log_loss").mean())

    @property
    def accuracy(self) -> float:
        """Mean accuracy over the folds."""
        return float(self._values("accuracy").mean())

    def std(self, name: str = "log_loss", ddof: int = 0) -> float:
        """Standard deviation of a per-fold score (``ddof=0`` as scikit-learn's
        ``cv_results_``; ``ddof=1`` for the sample standard deviation)."""
        return float(self._values(name).std(ddof=ddof))

    @property
    def oof_scores(self) -> dict[str, float]:
        """Scores of the pooled out-of-fold probabilities."""
        return preference_scores(self.y, self.oof)

    @property
    def class_prior_log_loss(self) -> float:
        """Log loss of always predicting the class frequencies of ``y``."""
        prior = np.bincount(self.y, minlength=3) / len(self.y)
        return float(-np.log(prior[self.y]).mean())

    def to_dict(self, ddof: int = 0) -> dict[str, Any]:
        """A JSON-able summary (without the out-of-fold probabilities)."""
        return {
            "rows": int(len(self.y)),
            "folds": len(self.folds),
            "grouped_by_prompt": self.grouped,
            "log_loss": self.log_loss,
            "log_loss_std": self.std("log_loss", ddof),
            "accuracy": self.accuracy,
            "accuracy_std": self.std("accuracy", ddof),
            "std_ddof": ddof,
            "oof": self.oof_scores,
            "class_prior_log_loss": self.class_prior_log_loss,
            "per_fold": [
                {
                    "fold": f.fold,
                    "rows": f.rows,
                    "log_loss": f.log_loss,
                    "accuracy": f.accuracy,
                    "fit_s": f.fit_s,
                    "predict_s": f.predict_s,
                }
                for f in self.folds
            ],
            "seconds": self.seconds,
        }


def cv_splits(
    X: Any,
    y: Any,
    *,
    folds: int = 5,
    grouped: bool = True,
    random_state: int | None = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled stratified folds, grouped by prompt unless ``grouped=False``.

    Raises
    ------
    ValueError
        When ``folds`` is less than 2.
    """
    from sklearn.model_selection import StratifiedKFold

    from .model_selection import PromptGroupKFold

    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    splitter: Any = (PromptGroupKFold if grouped else StratifiedKFold)(
        n_splits=folds, shuffle=True, random_state=random_state
    )
    return list(splitter.split(X, y))


def cross_validate_preference(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    folds: int = 5,
    grouped: bool = True,
    random_state: int | None = 0,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    on_fold: Callable[[FoldResult, Any], None] | None = None,
    show_progress_bar: bool = False,
) -> CVReport:
    """Cross-validate an estimator of arena rows: per-fold scores, times, OOF.

    Each fold fits a ``clone`` of ``estimator`` on its training rows only and
    predicts its held-out rows; warnings raised inside a fold are recorded in
    that fold's result (and still shown).

    Parameters
    ----------
    estimator : estimator
        Its input is the raw arena DataFrame (any gemma-pref pipeline).
    X : pandas.DataFrame
        Arena rows.
    y : array-like of shape (n_rows,)
        Labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
    folds : int, default=5
    grouped : bool, default=True
        Keep each prompt within one fold (:class:`~gemma_pref.PromptGroupKFold`).
    random_state : int or None, default=0
        Seed of the shuffled folds.
    splits : sequence of (train, test) index arrays, default=None
        Use these folds instead (``folds``, ``grouped``, ``random_state`` are
        then ignored).
    on_fold : callable, default=None
        ``on_fold(result, fitted_model)`` after each fold.
    show_progress_bar : bool, default=False
        A progress bar over the folds.

    Returns
    -------
    report : CVReport

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from gemma_pref import ArenaStructureFeatures, labels_from_winner
    >>> from gemma_pref import load_arena_sample, make_logreg_classifier
    >>> df = load_arena_sample()
    >>> model = make_pipeline(ArenaStructureFeatures(), make_logreg_classifier(0.01))
    >>> report = cross_validate_preference(model, df, labels_from_winner(df), folds=3)
    >>> len(report.folds), report.oof.shape
    (3, (715, 3))
    """
    from sklearn.base import clone
    from tqdm.auto import tqdm

    from .schema import check_labels

    y = check_labels(y)
    if splits is None:
        splits = cv_splits(X, y, folds=folds, grouped=grouped, random_state=random_state)
    oof = np.zeros((len(y), 3))
    results: list[FoldResult] = []
    start = time.perf_counter()
    for k, (train, test) in enumerate(
        tqdm(splits, desc="CV folds", unit="fold", disable=not show_progress_bar)
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = clone(estimator)
            t0 = time.perf_counter()
            model.fit(X.iloc[train], y[train])
            t1 = time.perf_counter()
            proba = np.asarray(model.predict_proba(X.iloc[test]), dtype=np.float64)
            t2 = time.perf_counter()
        for w in caught:  # recorded, and shown as they would have been
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        oof[test] = proba
        result = FoldResult(
            fold=k,
            rows=int(len(test)),
            **preference_scores(y[test], proba),
            fit_s=t1 - t0,
            predict_s=t2 - t1,
            warnings=sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught}),
        )
        results.append(result)
        if on_fold is not None:
            on_fold(result, model)
    return CVReport(
        folds=results,
        oof=oof,
        y=y,
        grouped=grouped,
        seconds=time.perf_counter() - start,
    )
