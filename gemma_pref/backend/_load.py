# SPDX-License-Identifier: Apache-2.0
"""Load a checkpoint's tokenizer and model (a backbone, maybe truncated, or a classifier).

The only module that imports transformers' model classes and bitsandbytes,
inside functions so that ``import gemma_pref`` stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ._compute import dtype_name
from ._truncation import DropLoadReport, finish_truncation, truncated_config

__all__ = ["load_tokenizer", "quantization_config", "load_model"]

logger = logging.getLogger(__name__)


def load_tokenizer(model_dir: Path, tokenizer_kwargs: dict | None = None) -> Any:
    """Load the tokenizer of a local checkpoint."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, **(tokenizer_kwargs or {})
    )


def quantization_config(quantization: str | None, dtype: Any) -> Any:
    """bitsandbytes config for ``"4bit"`` (nf4) or ``"8bit"``, else ``None``."""
    if quantization is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:  # pragma: no cover - bitsandbytes is a dependency
        raise ImportError(
            f"quantization={quantization!r} needs bitsandbytes: pip install 'bitsandbytes>=0.45'"
        ) from exc
    if quantization == "4bit":
        # nf4, not bitsandbytes' default fp4: on Gemma 3 270M fp4 moved mean-pooled
        # vectors to cosine 0.91-0.95 of float32, nf4 to 0.97-0.98.
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=False,
        )
    _quiet_repeated_bnb_logs()
    return BitsAndBytesConfig(load_in_8bit=True)


class _OncePerMessage(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _quiet_repeated_bnb_logs() -> None:
    # bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on
    # every 8-bit matmul of every forward pass; once is informative enough.
    log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _OncePerMessage) for f in log.filters):
        log.addFilter(_OncePerMessage())


def load_model(
    model_dir: Path,
    *,
    device: str,
    dtype: Any,
    quantization: str | None = None,
    model_kwargs: dict | None = None,
    progress: bool = True,
    num_labels: int | None = None,
    num_layers: int | None = None,
) -> Any:
    """Load a checkpoint on ``device``: its backbone, or a classifier.

    Without ``num_labels``, ``AutoModel`` maps a causal-LM checkpoint such as
    Gemma-2 to its base model, so the forward pass returns the last hidden
    state and never computes the vocabulary-sized logits; the model is frozen
    and in eval mode. With ``num_labels``, ``AutoModelForSequenceClassification``
    adds a fresh ``score`` head of that many outputs (for fine-tuning; the
    caller sets the modes). ``progress=False`` hides transformers' "Loading
    weights" bar.

    ``num_layers`` (backbone only) keeps the first ``num_layers`` decoder
    layers: the model is built from
    :func:`~gemma_pref.backend._truncation.truncated_config`, so the other
    layers are never built and their weights never read, and its final norm
    is replaced by the identity, so that its ``last_hidden_state`` is the
    full model's ``hidden_states[num_layers]`` (the output of decoder layer
    ``num_layers``, before the norm that only the last layer gets).
    """
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    qconfig = quantization_config(quantization, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    if qconfig is not None or not device.startswith("cpu"):
        # load straight onto the device: 4-bit models cannot be moved later
        kwargs["device_map"] = {"": device}
    if num_layers is not None:
        if num_labels is not None:
            raise ValueError("num_layers truncates a backbone; got num_labels too")
        kwargs["config"] = truncated_config(model_dir, num_layers)
        kwargs["output_loading_info"] = True
    kwargs.update(model_kwargs or {})
    logger.info(
        "Loading %s on %s (dtype=%s, quantization=%s%s)",
        model_dir,
        device,
        dtype_name(dtype),
        quantization,
        "" if num_layers is None else f", first {num_layers} decoder layers",
    )
    hide = not progress and hf_logging.is_progress_bar_enabled()
    if hide:
        hf_logging.disable_progress_bar()
    auto = AutoModel if num_labels is None else AutoModelForSequenceClassification
    # "Some weights ... newly initialized" is expected for the fresh head
    verbosity = hf_logging.get_verbosity()
    if num_labels is not None:
        hf_logging.set_verbosity_error()
    # a truncated stack leaves the dropped layers' weights unused, which
    # transformers reports as a warning: finish_truncation checks it instead
    report_filter = DropLoadReport() if num_layers is not None else None
    report_logger = hf_logging.get_logger("transformers.modeling_utils")
    if report_filter is not None:
        report_logger.addFilter(report_filter)
    try:
        model = auto.from_pretrained(model_dir, **kwargs)
    finally:
        if report_filter is not None:
            report_logger.removeFilter(report_filter)
        hf_logging.set_verbosity(verbosity)
        if hide:
            hf_logging.enable_progress_bar()
    if num_layers is not None:
        model, info = model
        finish_truncation(model, model_dir, num_layers, info)
    if hasattr(model, "config"):
        # the KV cache is useless for one forward pass and costs memory
        model.config.use_cache = False
    if num_labels is None:
        model.eval()
        model.requires_grad_(False)
    return model
