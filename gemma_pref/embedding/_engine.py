# SPDX-License-Identifier: Apache-2.0
"""The forward engine shared by gemma-pref's model-facing estimators.

A :class:`Runtime` holds a tokenizer and one model replica per device. Its
:meth:`Runtime.run` tokenizes texts, plans length-sorted token-budget batches,
runs them on the replicas in one thread per device, backs off on
out-of-memory errors, and writes each row's output back at its input index.
What a forward pass returns per row is the *head*'s business: a callable
``head(model, input_ids, attention_mask) -> Tensor (batch, width)``. The
embedder's head pools a hidden state (:func:`pooling_head`); a
classifier's head returns class logits. The loop never learns which head it
runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backend import _checkpoints, _compute, _load
from ..backend.devices import run_on_devices
from ..data._cells import clean_text
from .batching import plan_batches
from .pooling import pool

__all__ = [
    "BACKENDS",
    "Head",
    "PoolingHead",
    "Runtime",
    "pad_batch",
    "pad_token_id",
    "pooling_head",
    "tokenize",
]

logger = logging.getLogger(__name__)

#: ``head(model, input_ids, attention_mask)``: one row of outputs per input row.
Head = Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its
    end-of-sequence token, else 0."""
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    return 0 if pad is None else int(pad)


@dataclass(frozen=True, repr=False)
class PoolingHead:
    """The embedder's head: a hidden state pooled over real tokens.

    A value (two heads of the same mode and layers are equal), so that a
    runtime whose replicas were exported with one head can check it is asked
    for that one.

    ``layers=None`` pools ``last_hidden_state`` (after the final norm). A
    tuple of indices into the model's ``hidden_states`` (0: the embedding
    output, ``i``: the output of decoder layer ``i``) pools each and averages
    the pooled vectors. When it is the single index of the model's last
    layer (a stack truncated there, see :func:`gemma_pref.backend._load.load_model`),
    ``last_hidden_state`` is pooled and no other state is kept.
    """

    mode: str
    layers: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        # the repr is part of the ONNX export key: unchanged for the last layer
        if self.layers is None:
            return f"PoolingHead(mode={self.mode!r})"
        return f"PoolingHead(mode={self.mode!r}, layers={self.layers!r})"

    def __call__(self, model: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.layers is None or self.layers == (_num_hidden_layers(model),):
            output = model(input_ids=input_ids, attention_mask=mask)
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None:
                hidden = output[0]
            return pool(hidden, mask, self.mode)
        output = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        states = output.hidden_states
        pooled = [pool(states[i], mask, self.mode) for i in self.layers]
        return pooled[0] if len(pooled) == 1 else torch.stack(pooled).mean(dim=0)


def _num_hidden_layers(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return None if config is None else _checkpoints.num_hidden_layers_of(config)


def pooling_head(mode: str, layers: tuple[int, ...] | None = None) -> Head:
    """The embedder's head: a hidden state pooled over real tokens (see
    :class:`PoolingHead`)."""
    return PoolingHead(mode, layers)


def _run_exported(replica: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The head of a runtime whose replicas compute their head themselves."""
    return replica(input_ids, mask)


#: Compute paths of :meth:`Runtime.load`.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime")


def _is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    # older torch, MPS and some CUDA library paths raise a plain RuntimeError
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens added, right-truncated).

    Lone UTF-16 surrogates (``"\\ud83d"``, which JSON allows) cannot be
    encoded as UTF-8; the tokenizer would raise a ``TypeError``. They are
    replaced by U+FFFD, as :class:`~gemma_pref.ArenaTextFormatter` does.
    """
    enc = tokenizer(
        [clean_text(t) for t in texts],
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return list(enc["input_ids"])


class Runtime:
    """A tokenizer plus one model replica per device.

    Parameters
    ----------
    tokenizer : tokenizer
        A Hugging Face tokenizer.
    models : list
        One loaded model per entry of ``devices``.
    devices : list of str
        Where each replica lives (``["cpu", "cpu"]``: two CPU replicas).
    dtype : torch.dtype
        Compute dtype of the replicas (for error messages).
    description : str, default=""
        How the replicas were loaded (backend, dtype), for logs and reports.
    exported_head : Head or None, default=None
        For replicas that compute a head themselves (an exported graph):
        that head; :meth:`run` accepts no other.
    """

    def __init__(
        self,
        tokenizer: Any,
        models: Sequence[Any],
        devices: Sequence[str],
        dtype: Any,
        description: str = "",
        exported_head: Head | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.models = list(models)
        self.devices = list(devices)
        self.dtype = dtype
        self.description = description
        self.exported_head = exported_head
        self.pad_id = pad_token_id(tokenizer)
        for model in self.models:
            _set_pad_token(model, self.pad_id)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        devices: Sequence[str],
        dtype: Any,
        *,
        load_model: Callable[..., Any] = _load.load_model,
        tokenizer_kwargs: dict | None = None,
        backend: str = "torch",
        head: Head | None = None,
        export_root: Path | None = None,
        max_length: int = 1024,
        **load_kwargs: Any,
    ) -> Runtime:
        """Load the tokenizer and one replica per device with ``load_model``.

        ``load_model(model_dir, device=..., dtype=..., **load_kwargs)`` loads
        one replica; the default loads the backbone (no language-model head).

        With ``backend="onnxruntime"`` (CPU devices, float32), ``head`` on the
        model is exported to ONNX once under ``export_root`` (checked against
        PyTorch up to ``max_length`` tokens) and each replica is an ONNX
        Runtime session of that graph; :meth:`run` then runs ``head`` only.
        With ``quantization="8bit"`` among ``load_kwargs`` the sessions run
        that graph's 8-bit quantization (made once beside it, see
        :func:`gemma_pref.backend._compute.int8_settings`).
        """
        tokenizer = _load.load_tokenizer(model_dir, tokenizer_kwargs)
        if backend == "torch":
            models = [
                load_model(model_dir, device=device, dtype=dtype, **load_kwargs)
                for device in devices
            ]
            return cls(tokenizer, models, devices, dtype, f"torch {_compute.dtype_name(dtype)}")
        if backend != "onnxruntime":
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        if head is None or export_root is None:
            raise ValueError("backend='onnxruntime' needs the head to export and export_root")
        from ..backend import _onnx

        # the float32 graph is exported from the float32 model; 8-bit weights
        # are ONNX Runtime's quantization of that graph
        quantization = load_kwargs.get("quantization")
        if "quantization" in load_kwargs:
            load_kwargs = {**load_kwargs, "quantization": None}
        path = _onnx.exported_model(
            Path(export_root),
            fingerprint=_checkpoints.model_fingerprint(model_dir, include_path=False),
            head=head,
            model_kwargs=load_kwargs.get("model_kwargs"),
            max_length=max_length,
            pad_id=pad_token_id(tokenizer),
            load_torch_model=lambda: _set_pad_token(
                load_model(model_dir, device="cpu", dtype=dtype, **load_kwargs),
                pad_token_id(tokenizer),
            ),
        )
        weights = "float32"
        if quantization == "8bit":
            settings = _compute.int8_settings()
            path = _onnx.quantized_model(
                path,
                settings,
                max_length=max_length,
                pad_id=pad_token_id(tokenizer),
                vocab_size=len(tokenizer),
            )
            weights = (
                "int8 weights (dynamic, per channel"
                + (", 7-bit: no VNNI on this CPU" if settings["reduce_range"] else ", VNNI")
                + "), float32 activations"
            )
        elif quantization is not None:
            raise ValueError(
                f"backend='onnxruntime' runs float32 or 8-bit weights; got {quantization!r}"
            )
        replicas = _onnx.replicas(path, devices)
        description = (
            f"onnxruntime {_onnx.version()} {weights}, {replicas[0].threads} "
            f"thread{'s' if replicas[0].threads != 1 else ''} per replica"
        )
        return cls(tokenizer, replicas, devices, dtype, description, exported_head=head)

    def tokenize(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of each text: :func:`tokenize` with this runtime's tokenizer."""
        return tokenize(self.tokenizer, texts, max_length)

    def run(
        self,
        texts: Sequence[str],
        head: Head,
        *,
        max_length: int,
        batch_size: int,
        max_tokens_per_batch: int | None,
        padding: str = "longest",
        progress: Any = None,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
        what: str = "Embedding",
        ids: Sequence[list[int]] | None = None,
    ) -> np.ndarray:
        """Run ``head`` over ``texts``; a float32 array, rows in input order.

        ``on_batch(rows, vectors)`` is called after each forward pass (from
        the device's thread) with the indices into ``texts`` and their
        vectors, so that callers can cache finished work before a later batch
        fails. ``ids``: the texts' token ids when the caller already has
        them (:meth:`tokenize` at ``max_length``), so that no text is
        tokenized twice.
        """
        if self.exported_head is not None:
            if head != self.exported_head:
                raise ValueError(
                    f"these replicas were exported with {self.exported_head!r}; got {head!r}"
                )
            head = _run_exported
        if ids is None:
            ids = self.tokenize(texts, max_length)
        elif len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} token id lists for {len(texts)} texts")
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad_to = max_length if padding == "max_length" else None
        batches = plan_batches(
            lengths, batch_size=batch_size, max_tokens=max_tokens_per_batch, pad_to=pad_to
        )
        job = _Job(list(ids), lengths, pad_to, head, [None] * len(self.devices))
        out: list[np.ndarray | None] = [None]
        lock = threading.Lock()

        def work(dev_index: int, rows: np.ndarray) -> None:
            for part in job.split_for_cap(rows, dev_index):
                vecs = self._forward_backoff(dev_index, part, job)
                with lock:
                    if out[0] is None:
                        out[0] = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                    out[0][part] = vecs  # type: ignore[index]
                    if progress is not None:
                        progress.update(len(part))
                if on_batch is not None:
                    on_batch(part, vecs)

        run_on_devices(self.devices, batches, work, what)
        if out[0] is None:
            raise RuntimeError("no text to run")
        return out[0]

    def _forward_backoff(self, dev_index: int, rows: np.ndarray, job: _Job) -> np.ndarray:
        """Forward ``rows``; on out-of-memory, halve the batch and retry.

        Halving goes down to one row; the outputs equal those of an unsplit
        batch (masked pooling does not depend on the padding). The largest
        batch that failed is remembered per device (``job.token_caps``) so
        that later batches are cut before they fail. One row that does not fit
        raises ``torch.OutOfMemoryError`` naming the device and the remedies.
        """
        device = self.devices[dev_index]
        width = job.width(rows)
        try:
            return self._forward(dev_index, rows, job)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            if len(rows) == 1:
                _release_memory(device)
                raise torch.cuda.OutOfMemoryError(
                    f"out of memory on device {device!r} with a single text of "
                    f"{width} tokens (batches were already halved down to one "
                    "text). Lower max_length (or max_tokens_per_batch), load the "
                    "model with quantization='4bit' or '8bit', use "
                    "dtype='bfloat16', or free memory on this device."
                ) from exc
        # Retry outside the except block: the exception's traceback holds the
        # failed batch's activations, which must be freed before the retry.
        _release_memory(device)
        half = (len(rows) + 1) // 2
        job.lower_cap(dev_index, half * width)
        logger.warning(
            "Out of memory on %s with %d rows x %d tokens; retrying with %d rows",
            device,
            len(rows),
            width,
            half,
        )
        first = self._forward_backoff(dev_index, rows[:half], job)
        second = self._forward_backoff(dev_index, rows[half:], job)
        return np.concatenate([first, second])

    def _forward(self, dev_index: int, rows: np.ndarray, job: _Job) -> np.ndarray:
        model = self.models[dev_index]
        device = self.devices[dev_index]
        input_ids, mask = pad_batch(job.ids, rows, job.width(rows), self.pad_id)
        input_ids = input_ids.to(device, non_blocking=True)
        mask = mask.to(device, non_blocking=True)
        with torch.inference_mode():
            vecs = job.head(model, input_ids, mask).to(torch.float32).cpu().numpy()
        if not np.isfinite(vecs).all():
            bad = int((~np.isfinite(vecs).all(axis=1)).sum())
            name = _compute.dtype_name(self.dtype)
            raise FloatingPointError(
                f"non-finite output values in {bad} of {len(rows)} rows with dtype "
                f"{name} on {device!r}; "
                f"{_compute.nonfinite_advice(name, _compute.device_facts(device))}"
            )
        return vecs


@dataclass
class _Job:
    """One :meth:`Runtime.run`: token ids, their lengths, the head, and the
    largest batch (in padded tokens) that fit each device after an
    out-of-memory error."""

    ids: list[list[int]]
    lengths: np.ndarray
    pad_to: int | None
    head: Head
    token_caps: list[int | None]

    def width(self, rows: np.ndarray) -> int:
        """Padded length of a batch of ``rows`` (at least 1)."""
        # max(..., 1): a tokenizer that adds no special token gives "" no token
        return max(self.pad_to or int(self.lengths[rows].max()), 1)

    def split_for_cap(self, rows: np.ndarray, dev_index: int) -> list[np.ndarray]:
        cap = self.token_caps[dev_index]
        if cap is None:
            return [rows]
        per = max(1, cap // self.width(rows))
        return [rows[i : i + per] for i in range(0, len(rows), per)]

    def lower_cap(self, dev_index: int, cap: int) -> None:
        known = self.token_caps[dev_index]
        if known is None or cap < known:
            self.token_caps[dev_index] = cap


def pad_batch(
    ids: Sequence[Sequence[int]], rows: np.ndarray, width: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` of ``rows`` (CPU tensors).

    Texts longer than ``width`` are cut to it.
    """
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        row = ids[r][:width]
        input_ids[j, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[j, : len(row)] = 1
    return input_ids, mask


def _set_pad_token(model: Any, pad_id: int) -> Any:
    """Batches are padded with ``pad_id``; a sequence-classification head finds
    each row's last real token through ``config.pad_token_id``."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "pad_token_id"):
        config.pad_token_id = pad_id
    return model


def _release_memory(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
