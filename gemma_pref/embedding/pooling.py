# SPDX-License-Identifier: Apache-2.0
"""Pooling of token states into one vector per row (pure tensor functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["POOLING_MODES", "pool"]

#: Supported pooling modes.
POOLING_MODES = ("mean", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden`` of shape (batch, seq, dim) into (batch, dim) float32.

    Parameters
    ----------
    hidden : torch.Tensor
        Token states, any floating dtype.
    mask : torch.Tensor
        Attention mask of shape (batch, seq): 1 for real tokens, 0 for padding.
    mode : {"mean", "last"}
        ``"mean"`` averages the real tokens only (padding never counts, so the
        result does not depend on how much padding a batch has). ``"last"``
        takes the last real token (left or right padding).

    Returns
    -------
    pooled : torch.Tensor
        Float32 tensor of shape (batch, dim).

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> m = torch.tensor([[1, 1, 0]])
    >>> pool(h, m, "mean").tolist(), pool(h, m, "last").tolist()
    ([[2.0]], [[3.0]])
    """
    import torch

    if mode == "mean":
        weights = mask.to(torch.float32).unsqueeze(-1)
        summed = (hidden.to(torch.float32) * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1e-9)
        return summed / counts
    if mode == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.to(torch.long) * (positions + 1)).argmax(dim=1)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last].to(torch.float32)
    raise ValueError(f"pooling must be one of {POOLING_MODES}; got {mode!r}")
