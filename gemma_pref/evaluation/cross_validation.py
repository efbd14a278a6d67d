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
    "COMPETITION_METRIC",
    "CVReport",
    "FoldResult",
    "cross_validate_preference",
    "cv_splits",
    "preference_scores",
]


def preference_scores(y: Any, proba: Any, classes: Any = None) -> dict[str, float]:
    """Log loss and accuracy of class probabilities (three classes or two).

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
    proba : array-like of shape (n_rows, n_classes)
        Probabilities, one column per class of ``classes``.
    classes : array-like of shape (n_classes,) or None, default=None
        The label of each column (a fitted model's ``classes_``). ``None``:
        ``[0, 1, 2]`` for three columns, ``[0, 1]`` for two (a two-class task
        such as the WSDM Cup's, scored by accuracy).

    Returns
    -------
    scores : dict
        ``log_loss`` and ``accuracy``.

    Raises
    ------
    ValueError
        When ``proba`` has another number of columns than ``classes``, or a
        label of ``y`` is not among ``classes``.

    Examples
    --------
    >>> s = preference_scores([0, 2], [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    >>> round(s["log_loss"], 4), s["accuracy"]
    (0.6931, 1.0)
    >>> preference_scores([0, 1], [[0.8, 0.2], [0.4, 0.6]])["accuracy"]
    1.0
    """
    from sklearn.metrics import accuracy_score, log_loss

    proba = np.asarray(proba, dtype=np.float64)
    labels = _classes(proba, classes)
    y = np.asarray(y)
    unknown = sorted(set(np.unique(y).tolist()) - set(labels.tolist()))
    if unknown:
        raise ValueError(
            f"y holds the label(s) {unknown} but the probabilities are for the classes "
            f"{labels.tolist()} only (0: model_a, 1: model_b, 2: tie)"
        )
    return {
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "accuracy": float(accuracy_score(y, labels[np.argmax(proba, axis=1)])),
    }


def _classes(proba: np.ndarray, classes: Any) -> np.ndarray:
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (n_rows, n_classes); got shape {proba.shape}")
    if classes is None:
        if proba.shape[1] not in (2, 3):
            raise ValueError(
                "proba must have 3 columns (model_a, model_b, tie) or 2 (model_a, "
                f"model_b); got shape {proba.shape}"
            )
        return np.arange(proba.shape[1])
    labels = np.asarray(classes, dtype=np.int64)
    if labels.shape != (proba.shape[1],):
        raise ValueError(
            f"proba has {proba.shape[1]} columns but classes names {labels.size}: {labels.tolist()}"
        )
    return labels


#: What each competition scores: the metric ``gemma-pref cv`` names.
COMPETITION_METRIC: dict[int, str] = {
    3: "log loss (Kaggle LMSYS - Chatbot Arena, three classes)",
    2: "accuracy (WSDM Cup 2025 - Multilingual Chatbot Arena, two classes)",
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
    oof : ndarray of shape (n_rows, n_classes)
        Out-of-fold probabilities: each row predicted by the model that did
        not see it, one column per class of ``classes``.
    y : ndarray of shape (n_rows,)
    grouped : bool
        Whether the folds were grouped by prompt.
    seconds : float
        Wall time of the whole loop.
    classes : ndarray of shape (n_classes,)
        The labels of the columns of ``oof``: those of ``y``, ``[0, 1, 2]``
        or, for a two-class task, ``[0, 1]``.
    """

    folds: list[FoldResult]
    oof: np.ndarray
    y: np.ndarray
    grouped: bool
    seconds: float
    classes: np.ndarray = field(default_factory=lambda: np.arange(3))

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
        return preference_scores(self.y, self.oof, self.classes)

    @property
    def class_prior_log_loss(self) -> float:
        """Log loss of always predicting the class frequencies of ``y``."""
        prior = np.bincount(self.y, minlength=3) / len(self.y)
        return float(-np.log(prior[self.y]).mean())

    @property
    def class_prior_accuracy(self) -> float:
        """Accuracy of always predicting the most frequent class of ``y``."""
        return float(np.bincount(self.y, minlength=3).max() / len(self.y))

    @property
    def competition_metric(self) -> str:
        """The metric of the competition with as many classes (see :data:`COMPETITION_METRIC`)."""
        return COMPETITION_METRIC.get(len(self.classes), "log loss")

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
            "class_prior_accuracy": self.class_prior_accuracy,
            "classes": self.classes.tolist(),
            "competition_metric": self.competition_metric,
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
    cell_format: str = "auto",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled stratified folds, grouped by prompt unless ``grouped=False``.

    ``cell_format`` is how the prompts are read for the groups (see
    :class:`~gemma_pref.PromptGroupKFold`).

    Raises
    ------
    ValueError
        When ``folds`` is less than 2.
    """
    from sklearn.model_selection import StratifiedKFold

    from .model_selection import PromptGroupKFold

    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    splitter: Any = (
        PromptGroupKFold(folds, shuffle=True, random_state=random_state, cell_format=cell_format)
        if grouped
        else StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
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
    cell_format: str = "auto",
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
        Labels 0 (model_a wins), 1 (model_b wins), 2 (tie); a two-class task
        has only 0 and 1, and then the out-of-fold probabilities two columns.
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
    cell_format : {"auto", "json", "text"}, default="auto"
        How the prompt-grouped folds read the prompts: as ``estimator`` reads
        the cells (see :class:`~gemma_pref.ArenaTextFormatter`).

    Returns
    -------
    report : CVReport

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from gemma_pref import ArenaStructureFeatures
    >>> from gemma_pref.data import labels_from_winner
    >>> from gemma_pref import load_arena_sample
    >>> from gemma_pref.models import make_logreg_classifier
    >>> df = load_arena_sample()
    >>> model = make_pipeline(ArenaStructureFeatures(), make_logreg_classifier(0.01))
    >>> report = cross_validate_preference(model, df, labels_from_winner(df), folds=3)
    >>> len(report.folds), report.oof.shape
    (3, (715, 3))
    """
    from sklearn.base import clone
    from tqdm.auto import tqdm

    from ..data.schema import check_labels

    y = check_labels(y)
    if splits is None:
        splits = cv_splits(
            X, y, folds=folds, grouped=grouped, random_state=random_state, cell_format=cell_format
        )
    classes = np.unique(y)
    oof = np.zeros((len(y), len(classes)))
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
        # columns follow the fold model's classes_, which may lack a class
        fold_classes = np.asarray(getattr(model, "classes_", classes[: proba.shape[1]]))
        oof[np.ix_(test, np.searchsorted(classes, fold_classes))] = proba
        result = FoldResult(
            fold=k,
            rows=int(len(test)),
            **preference_scores(y[test], oof[test], classes),
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
        classes=classes,
    )
