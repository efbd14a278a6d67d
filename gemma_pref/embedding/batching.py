# SPDX-License-Identifier: Apache-2.0
"""Length-sorted batch planning (NumPy only).

Rows are sorted by token length, longest first, and cut into batches that hold
at most ``batch_size`` rows and, optionally, at most ``max_tokens`` padded
tokens. Longest first means the largest batch runs first, so an out-of-memory
error shows up at once rather than after an hour. The caller writes each
row's vector back at its original index, which restores the input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plan_batches", "padding_efficiency"]


def plan_batches(
    lengths: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    max_tokens: int | None = None,
    pad_to: int | None = None,
) -> list[np.ndarray]:
    """Group row indices into length-sorted batches.

    Parameters
    ----------
    lengths : sequence of int
        Token count of each row.
    batch_size : int
        Most rows in one batch.
    max_tokens : int or None, default=None
        Most padded tokens (rows x padded length) in one batch. A single row
        longer than this still gets a batch of its own.
    pad_to : int or None, default=None
        Pad every batch to this length (``padding="max_length"``) instead of
        to its longest row.

    Returns
    -------
    batches : list of ndarray of int
        Indices into ``lengths``; every index appears exactly once.

    Examples
    --------
    >>> [b.tolist() for b in plan_batches([3, 9, 1, 7], batch_size=2)]
    [[1, 3], [0, 2]]
    >>> [b.tolist() for b in plan_batches([3, 9, 1, 7], batch_size=4, max_tokens=16)]
    [[1], [3, 0], [2]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        width = pad_to if pad_to is not None else int(lengths[order[start]])
        rows = batch_size
        if max_tokens is not None:
            rows = max(1, min(rows, max_tokens // max(width, 1)))
        batches.append(order[start : start + rows])
        start += rows
    return batches


def padding_efficiency(
    lengths: Sequence[int] | np.ndarray,
    batches: Sequence[np.ndarray],
    *,
    pad_to: int | None = None,
) -> float:
    """Real tokens divided by processed (padded) tokens for a batch plan.

    Examples
    --------
    >>> lengths = [3, 9, 1, 7]
    >>> round(padding_efficiency(lengths, plan_batches(lengths, batch_size=2)), 3)
    0.833
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    real = int(lengths.sum())
    processed = 0
    for b in batches:
        width = pad_to if pad_to is not None else int(lengths[b].max())
        processed += width * len(b)
    return real / processed if processed else 1.0
