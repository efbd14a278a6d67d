# SPDX-License-Identifier: Apache-2.0
"""The torch side of :class:`~gemma_pref.GemmaPreferenceClassifier`.

:func:`train_lora_classifier` fine-tunes a LoRA adapter and a classification
head; :func:`load_adapted_classifier` loads a replica for inference (the base
checkpoint with a trained adapter applied) for the shared engine. peft and
transformers do the modelling: this module only drives them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backend import _checkpoints, _compute, _load
from ..embedding._engine import pad_batch, pad_token_id, tokenize
from ..embedding.batching import plan_batches

__all__ = ["TrainResult", "load_adapted_classifier", "train_lora_classifier"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What training leaves: the adapter (safetensors bytes), its config, the losses."""

    adapter_weights: bytes
    adapter_config: dict[str, Any]
    loss_curve: list[float]


def _head(model: Any) -> Any:
    """The classification head of a sequence classifier (``score`` or ``classifier``)."""
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None


def _zero_head(model: Any) -> None:
    """Start the fresh head at zero: uniform predictions, loss ln(n_classes).

    Gemma's last hidden states are large (hundreds in norm): the default
    initialisation (normal, std 0.02) gives logits far from zero and a first
    loss near 3 on Gemma 3 270M, where ln 3 = 1.10 is the uniform guess.
    """
    head = _head(model)
    if head is None:
        return
    with torch.no_grad():
        for p in head.parameters():
            if p.is_floating_point():
                p.zero_()


def _enable_checkpointing(model: Any) -> None:
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:  # transformers >= 5.x; use_reentrant=False by default
        enable()
    else:  # pragma: no cover - older transformers
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _get_peft_model(model: Any, config: Any) -> Any:
    """peft's ``get_peft_model`` with a fresh copy of ``config`` (peft edits it)."""
    import peft

    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 for `is_gradient_checkpointing`, which
        # warns that the name is deprecated: not the user's business
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        return peft.get_peft_model(model, copy.deepcopy(config))


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for the block (LoRA init, dropout) without touching the
    caller's random state afterwards."""
    devices = []
    if device.startswith("cuda"):
        devices = [int(device.split(":")[1]) if ":" in device else 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _precision(device: str, dtype: Any) -> tuple[Any, Any]:
    """(autocast context, GradScaler or None) for training in ``dtype``.

    float16 autocast always comes with loss scaling, on the CPU as on CUDA
    (no bfloat16 on T4-class GPUs): its gradients underflow without it.
    """
    kind = device.split(":")[0]
    if dtype in (torch.float16, torch.bfloat16) and kind in ("cuda", "cpu"):
        scaler = torch.amp.GradScaler(kind) if dtype == torch.float16 else None
        return torch.autocast(device_type=kind, dtype=dtype), scaler
    return contextlib.nullcontext(), None


def _trainable_in_float32(model: Any) -> list[Any]:
    """Cast every trainable parameter to float32; return them.

    peft upcasts its own adapter weights only: the head's trained copy
    (``ModulesToSaveWrapper``, a deep copy of the ``score`` layer) keeps the
    base dtype, and a float16 parameter is refused by ``GradScaler.unscale_``
    (AdamW in float16 also divides by an ``eps`` that rounds to zero). The
    frozen base stays in its dtype; autocast runs the half-precision matmuls.
    """
    params = []
    for p in model.parameters():
        if p.requires_grad:
            if p.dtype != torch.float32:
                p.data = p.data.to(torch.float32)
            params.append(p)
    return params


def train_lora_classifier(
    est: Any,
    model_dir: Path,
    texts: Sequence[str],
    codes: np.ndarray,
    *,
    n_classes: int,
    device: str,
    seed: int,
) -> TrainResult:
    """Fine-tune a LoRA adapter and a fresh head with ``est``'s parameters."""
    import peft
    from safetensors.torch import save as safetensors_bytes
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    dtype = _compute.resolve_dtype(
        est._dtype_value(), device, est.quantization, _checkpoints.model_type_of(model_dir)
    )
    tokenizer = _load.load_tokenizer(model_dir, est.tokenizer_kwargs)
    pad_id = pad_token_id(tokenizer)
    ids = tokenize(tokenizer, texts, est.max_length)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    batches = plan_batches(lengths, batch_size=est.batch_size, max_tokens=est.max_tokens_per_batch)
    rng = np.random.default_rng(seed)
    # length-grouped batches (rows of similar length), visited in random order
    order = [batches[i] for _ in range(est.num_epochs) for i in rng.permutation(len(batches))]
    accum = int(est.gradient_accumulation_steps)
    windows = [order[i : i + accum] for i in range(0, len(order), accum)]
    show = est._show_progress()
    config = est._lora_config()
    with _seeded(seed, device):
        model = _load.load_model(
            model_dir,
            device=device,
            dtype=dtype,
            quantization=est.quantization,
            model_kwargs=est.model_kwargs,
            progress=show,
            num_labels=n_classes,
        )
        model.config.pad_token_id = pad_id
        _zero_head(model)
        if est.quantization is not None:
            # freeze, cast the non-quantized weights to float32; checkpointing
            # below (peft would call transformers' deprecated spelling)
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if est.gradient_checkpointing:
            _enable_checkpointing(model)
        model = _get_peft_model(model, config)
        model.train()
        params = _trainable_in_float32(model)
        optimizer = torch.optim.AdamW(
            params, lr=float(est.learning_rate), weight_decay=float(est.weight_decay)
        )
        schedule = get_linear_schedule_with_warmup(
            optimizer, int(math.ceil(est.warmup_ratio * len(windows))), len(windows)
        )
        autocast, scaler = _precision(device, dtype)
        if scaler is not None:
            logger.info(
                "Training under %s autocast with loss scaling (initial scale %g)",
                _compute.dtype_name(dtype),
                scaler.get_scale(),
            )
        logger.info(
            "Fine-tuning %s on %s: %d texts, %d epoch(s), %d optimizer steps, "
            "%d trainable parameters (dtype=%s, quantization=%s)",
            model_dir,
            device,
            len(texts),
            est.num_epochs,
            len(windows),
            sum(p.numel() for p in params),
            _compute.dtype_name(dtype),
            est.quantization,
        )
        losses: list[float] = []
        skipped = 0
        bar = tqdm(
            total=sum(len(b) for b in order), unit="text", desc="Fine-tuning", disable=not show
        )
        try:
            for step, window in enumerate(windows):
                losses.append(
                    _step(model, window, ids, lengths, codes, pad_id, device, autocast, scaler)
                )
                if not math.isfinite(losses[-1]):
                    name = _compute.dtype_name(dtype)
                    advice = _compute.nonfinite_advice(name, _compute.device_facts(device))
                    raise FloatingPointError(
                        f"the training loss is {losses[-1]} at optimizer step {step + 1} "
                        f"on {device!r} (dtype {name}); lower learning_rate, or: {advice}"
                    )
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if est.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, float(est.max_grad_norm))
                stepped = True
                if scaler is not None:
                    scale = scaler.get_scale()
                    scaler.step(optimizer)  # skipped when a gradient is inf or NaN
                    scaler.update()
                    stepped = scaler.get_scale() >= scale
                    skipped += not stepped
                else:
                    optimizer.step()
                if stepped:  # the schedule follows the steps taken
                    schedule.step()
                optimizer.zero_grad(set_to_none=True)
                bar.update(sum(len(rows) for rows in window))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        finally:
            bar.close()
        if scaler is not None:
            logger.info(
                "loss scaling: final scale %g, %d of %d optimizer steps skipped "
                "(inf or NaN gradients in float16)",
                scaler.get_scale(),
                skipped,
                len(windows),
            )
        state = peft.get_peft_model_state_dict(model)
        weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    adapter = config.to_dict()
    del model, optimizer, params
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return TrainResult(safetensors_bytes(weights), _jsonable(adapter), losses)


def _step(
    model: Any,
    window: Sequence[np.ndarray],
    ids: list[list[int]],
    lengths: np.ndarray,
    codes: np.ndarray,
    pad_id: int,
    device: str,
    autocast: Any,
    scaler: Any,
) -> float:
    """Forward and backward the batches of one optimizer step; their mean loss."""
    import torch.nn.functional as F

    rows_in_step = sum(len(rows) for rows in window)
    total = 0.0
    for rows in window:
        width = max(int(lengths[rows].max()), 1)
        input_ids, mask = pad_batch(ids, rows, width, pad_id)
        labels = torch.as_tensor(codes[rows], dtype=torch.long, device=device)
        with autocast:
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        # each row weighs the same, whatever the size of its batch
        loss = F.cross_entropy(logits.float(), labels, reduction="sum") / rows_in_step
        (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach())
    return total


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, set):
            v = sorted(v)
        elif hasattr(v, "value"):  # enums: TaskType, PeftType
            v = v.value
        if v is None or isinstance(v, (bool, int, float, str, list, dict)):
            out[k] = v
    return out


def load_adapted_classifier(
    model_dir: Path,
    *,
    device: str,
    dtype: Any,
    quantization: str | None,
    model_kwargs: dict | None,
    progress: bool,
    adapter_weights: bytes,
    lora_config: Any,
    num_labels: int,
) -> Any:
    """One inference replica: the base classifier with a trained adapter.

    The adapter is merged into the weights when the base is not quantized (a
    forward pass without the LoRA branches); a 4-/8-bit base keeps them.
    Every replica is built this way, after ``fit`` as after unpickling, so
    the same adapter gives the same probabilities.
    """
    import peft
    from safetensors.torch import load as load_safetensors

    model = _load.load_model(
        model_dir,
        device=device,
        dtype=dtype,
        quantization=quantization,
        model_kwargs=model_kwargs,
        progress=progress,
        num_labels=num_labels,
    )
    adapted = _get_peft_model(model, lora_config)
    result = peft.set_peft_model_state_dict(adapted, load_safetensors(adapter_weights))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected:
        raise ValueError(
            f"the adapter does not fit the checkpoint at {str(model_dir)!r}: "
            f"{len(unexpected)} of its weights have no place in it "
            f"(e.g. {unexpected[0]!r})"
        )
    adapted.eval()
    if quantization is None:
        adapted = adapted.merge_and_unload()
    adapted.requires_grad_(False)
    return adapted
