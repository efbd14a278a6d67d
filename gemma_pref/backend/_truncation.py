# SPDX-License-Identifier: Apache-2.0
"""Keep the first decoder layers of a checkpoint, and check such a load.

:func:`gemma_pref.backend._load.load_model` builds a model from
:func:`truncated_config`, so the other layers are never built nor read, then
calls :func:`finish_truncation`. torch is imported inside functions.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ._checkpoints import load_config, num_hidden_layers_of

__all__ = ["truncated_config", "DropLoadReport", "decoder_stack", "finish_truncation"]

logger = logging.getLogger(__name__)


def truncated_config(model_dir: Path, num_layers: int) -> Any:
    """The checkpoint's configuration with only its first ``num_layers`` decoder layers.

    ``num_hidden_layers`` is set to ``num_layers``, and every per-layer list
    of the text configuration (a list or tuple as long as the layer count:
    ``layer_types`` of Gemma 2 and Gemma 3, which says for each layer whether
    it attends to a sliding window or to the whole text, and so which rotary
    embedding it uses) keeps its first ``num_layers`` entries. A model built
    from it has only those layers, and ``from_pretrained`` reads no weight of
    the others.
    """
    config = load_config(model_dir)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    total = num_hidden_layers_of(config)
    if total is None or not 1 <= num_layers <= total:
        raise ValueError(
            f"cannot keep {num_layers} decoder layers of {model_dir}: its configuration "
            f"has num_hidden_layers={total!r}"
        )
    for name, value in list(vars(text).items()):
        if isinstance(value, (list, tuple)) and len(value) == total and name != "architectures":
            setattr(text, name, type(value)(value[:num_layers]))
    text.num_hidden_layers = num_layers
    return config


_LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class DropLoadReport(logging.Filter):
    """Drops transformers' load report, whose findings
    :func:`~gemma_pref.backend._load.load_model` checks itself for a truncated
    stack (the dropped layers' weights are expected to be unused)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def decoder_stack(model: Any) -> Any:
    """The module holding the decoder ``layers`` and the final ``norm``, or ``None``."""
    import torch

    for candidate in (model, getattr(model, "language_model", None), getattr(model, "model", None)):
        layers = getattr(candidate, "layers", None)
        norm = getattr(candidate, "norm", None)
        if isinstance(layers, torch.nn.ModuleList) and isinstance(norm, torch.nn.Module):
            return candidate
    return None


def finish_truncation(model: Any, model_dir: Path, num_layers: int, info: dict) -> None:
    """Check a truncated load and drop the final norm (see
    :func:`~gemma_pref.backend._load.load_model`)."""
    import torch

    stack = decoder_stack(model)
    if stack is None or len(stack.layers) != num_layers:
        raise ValueError(
            f"{type(model).__name__} (from {model_dir}) has no stack of {num_layers} "
            "decoder layers and final norm (the 'layers' and 'norm' modules of Gemma, "
            "Gemma 2, Gemma 3 and Llama-style models) after keeping num_hidden_layers="
            f"{num_layers}: a middle layer of this architecture cannot be computed by "
            "truncation; use layer=-1"
        )
    # the final norm applies to the last layer only: the state of layer k of
    # the full model is the truncated stack's output before it
    stack.norm = torch.nn.Identity()
    unexpected = [
        k
        for k in info.get("unexpected_keys", ())
        if not ((m := _LAYER_KEY.search(k)) and int(m.group(1)) >= num_layers)
    ]
    missing = list(info.get("missing_keys", ()))
    if unexpected or missing:
        logger.warning(
            "Loading %s with %d decoder layers: %d checkpoint weights unused (%s), "
            "%d model weights not in the checkpoint (%s)",
            model_dir,
            num_layers,
            len(unexpected),
            ", ".join(sorted(unexpected)[:5]) or "none",
            len(missing),
            ", ".join(sorted(missing)[:5]) or "none",
        )
