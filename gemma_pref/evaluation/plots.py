# SPDX-License-Identifier: Apache-2.0
"""Calibration (reliability) diagrams and confusion matrices as PNG files.

Log loss punishes confident mistakes, so how well the predicted probabilities
are calibrated matters as much as accuracy. These functions draw with
``matplotlib.figure.Figure`` directly (no pyplot state, no display needed) and
return the figure; pass ``path`` to also write a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..data.schema import CLASS_NAMES

__all__ = ["plot_confusion_matrix", "plot_reliability", "save_cv_plots"]


def _check(y: Any, proba: Any) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``y``, ``proba`` and the class names of its columns (three classes or two)."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] not in (2, 3):
        raise ValueError(
            "proba must have shape (n_rows, 3) for model_a, model_b, tie or (n_rows, 2) "
            f"for model_a, model_b (a two-class task); got {proba.shape}"
        )
    if y.shape != (proba.shape[0],):
        raise ValueError(f"y has shape {y.shape} but proba has {proba.shape[0]} rows")
    names = CLASS_NAMES[: proba.shape[1]]
    outside = ~np.isin(y, np.arange(len(names)))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"y at position {i} is {y[i]!r}, not a class of the {len(names)} columns of "
            f"proba ({', '.join(names)})"
        )
    return y, proba, names


def _save(fig: Any, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        with atomic_path(Path(path)) as tmp:  # a unique temporary name, then a rename
            fig.savefig(tmp, dpi=120, format="png")


def plot_reliability(
    y: Any,
    proba: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    n_bins: int = 10,
    title: str | None = None,
) -> Any:
    """Reliability diagram per class (one-vs-rest), with the bin counts.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        True labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
    proba : array-like of shape (n_rows, 3) or (n_rows, 2)
        Predicted probabilities, columns in the same order (two columns, one
        panel each, for a two-class task without ties).
    path : str, os.PathLike or None, default=None
        Where to write a PNG.
    n_bins : int, default=10
        Equal-width probability bins.
    title : str or None, default=None
        Figure title.

    Returns
    -------
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from gemma_pref.evaluation.plots import plot_reliability
    >>> rng = np.random.default_rng(0)
    >>> proba = rng.dirichlet([2, 2, 2], size=300)
    >>> y = np.array([rng.choice(3, p=p) for p in proba])
    >>> fig = plot_reliability(y, proba)
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['model_a wins', 'model_b wins', 'tie']
    """
    from matplotlib.figure import Figure

    y, proba, names = _check(y, proba)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    fig = Figure(figsize=(4 * len(names), 4.2), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True)
    for k, (ax, name) in enumerate(zip(axes, names)):
        p = proba[:, k]
        hit = (y == k).astype(float)
        which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
        counts = np.bincount(which, minlength=n_bins)
        sum_p = np.bincount(which, weights=p, minlength=n_bins)
        hits = np.bincount(which, weights=hit, minlength=n_bins)
        used = counts > 0
        mean_p, freq = sum_p[used] / counts[used], hits[used] / counts[used]
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
        ax.plot(mean_p, freq, marker="o", color="C0", label="observed")
        ece = float(np.sum(counts[used] * np.abs(mean_p - freq)) / len(y))
        ax.set_title(f"{name} wins" if name != "tie" else "tie")
        ax.set_xlabel(f"predicted probability  (ECE {ece:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        twin = ax.twinx()
        twin.bar(
            (edges[:-1] + edges[1:]) / 2,
            counts,
            width=1.0 / n_bins,
            color="C1",
            alpha=0.25,
            label="rows",
        )
        twin.set_yticks([])
        ax.set_zorder(twin.get_zorder() + 1)  # the curve in front of the counts
        ax.patch.set_visible(False)
        if k == 0:
            ax.set_ylabel("observed frequency")
            ax.legend(loc="upper left")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_confusion_matrix(
    y: Any,
    proba: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Any:
    """Confusion matrix of the most probable class, row-normalised, with counts.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        The labels, as :func:`~gemma_pref.data.labels_from_winner` gives them.
    proba : array-like of shape (n_rows, 3) or (n_rows, 2)
        Predicted probabilities; the predicted class is each row's argmax (a
        2 x 2 matrix for a two-class task).
    path : str, os.PathLike or None, default=None
        Where to write the matrix as a PNG (``None``: not written).
    title : str or None, default=None
        Figure title; ``None`` names the accuracy.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One axes: the matrix, its cells coloured by row share.

    Examples
    --------
    >>> import numpy as np
    >>> from gemma_pref.evaluation.plots import plot_confusion_matrix
    >>> fig = plot_confusion_matrix([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 0]])
    >>> fig.axes[0].get_title()
    'confusion matrix (accuracy 0.750)'
    """
    from matplotlib.figure import Figure

    y, proba, names = _check(y, proba)
    pred = proba.argmax(axis=1)
    n = len(names)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (y.astype(int), pred), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(5, 4.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n({counts[i, j]})",
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(n), [f"pred {c}" for c in names])
    ax.set_yticks(range(n), [f"true {c}" for c in names])
    accuracy = float((pred == y).mean()) if len(y) else float("nan")
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def save_cv_plots(
    y: Any, proba: Any, prefix: str | os.PathLike[str], *, title: str | None = None
) -> list[Path]:
    """Write ``<prefix>.reliability.png`` and ``<prefix>.confusion.png``.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, 3) or (n_rows, 2)
        Out-of-fold probabilities.
    prefix : str or os.PathLike
        Path prefix, e.g. ``"cv"`` for ``cv.reliability.png``.
    title : str or None, default=None
        Title of both figures.

    Returns
    -------
    paths : list of pathlib.Path
    """
    prefix = Path(prefix)
    paths = [
        prefix.with_name(prefix.name + ".reliability.png"),
        prefix.with_name(prefix.name + ".confusion.png"),
    ]
    plot_reliability(y, proba, paths[0], title=title)
    plot_confusion_matrix(y, proba, paths[1], title=title)
    return paths
