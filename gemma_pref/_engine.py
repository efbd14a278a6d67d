# SPDX-License-Identifier: Apache-2.0
"""The torch side of :class:`~gemma_pref.GemmaEmbedder`: replicas and the forward loop."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import _loading
from .batching import plan_batches
from .devices import run_on_devices
from .pooling import pool

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    # older torch, MPS and some CUDA library paths raise a plain RuntimeError
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Runtime:
    """A tokenizer plus one model replica per device.

    Parameters
    ----------
    model_dir : pathlib.Path
        Local checkpoint directory.
    devices : list of str
        One replica is loaded per entry (``["cpu", "cpu"]`` loads two).
    dtype : torch.dtype
        Weights / compute dtype.
    quantization : {"4bit", "8bit"} or None
        bitsandbytes quantization.
    model_kwargs, tokenizer_kwargs : dict or None
        Passed to ``from_pretrained``.
    progress : bool
        Show transformers' weight-loading progress bars.
    """

    def __init__(
        self,
        model_dir: Path,
        devices: Sequence[str],
        dtype: torch.dtype,
        quantization: str | None,
        model_kwargs: dict | None = None,
        tokenizer_kwargs: dict | None = None,
        progress: bool = True,
    ) -> None:
        self.devices = list(devices)
        self.dtype = dtype
        self.tokenizer = _loading.load_tokenizer(model_dir, tokenizer_kwargs)
        self.models = [
            _loading.load_model(
                model_dir,
                device=device,
                dtype=dtype,
                quantization=quantization,
                model_kwargs=model_kwargs,
                progress=progress,
            )
            for device in self.devices
        ]
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        self.pad_id = 0 if pad is None else int(pad)

    def tokenize(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of each text (special tokens added, right-truncated).

        Lone UTF-16 surrogates (``"\\ud83d"``, which JSON allows) cannot be
        encoded as UTF-8; the tokenizer would raise a ``TypeError``. They are
        replaced by U+FFFD, as :class:`~gemma_pref.ArenaTextFormatter` does.
        """
        texts = [_SURROGATE.sub("\ufffd", t) for t in texts]
        enc = self.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return enc["input_ids"]

    def embed(
        self,
        texts: Sequence[str],
        *,
        max_length: int,
        batch_size: int,
        max_tokens_per_batch: int | None,
        pooling: str,
        padding: str,
        progress: Any = None,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` into a float32 array, rows in input order.

        ``on_batch(rows, vectors)`` is called after each forward pass (from
        the device's thread) with the indices into ``texts`` and their
        vectors, so that callers can cache finished work before a later batch
        fails.
        """
        ids = self.tokenize(texts, max_length)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad_to = max_length if padding == "max_length" else None
        batches = plan_batches(
            lengths, batch_size=batch_size, max_tokens=max_tokens_per_batch, pad_to=pad_to
        )
        out: list[np.ndarray | None] = [None]
        lock = threading.Lock()
        # largest batch that fit on each device after an out-of-memory error
        token_caps: list[int | None] = [None] * len(self.devices)

        def work(dev_index: int, rows: np.ndarray) -> None:
            for part in self._split_for_cap(rows, lengths, pad_to, token_caps[dev_index]):
                vecs = self._forward_backoff(dev_index, part, ids, lengths, pad_to,
                                             pooling, token_caps)
                with lock:
                    if out[0] is None:
                        out[0] = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                    out[0][part] = vecs
                    if progress is not None:
                        progress.update(len(part))
                if on_batch is not None:
                    on_batch(part, vecs)

        run_on_devices(self.devices, batches, work)
        if out[0] is None:
            raise RuntimeError("no text to embed")
        return out[0]

    @staticmethod
    def _split_for_cap(
        rows: np.ndarray, lengths: np.ndarray, pad_to: int | None, cap: int | None
    ) -> list[np.ndarray]:
        if cap is None:
            return [rows]
        width = pad_to or int(lengths[rows].max())
        per = max(1, cap // max(width, 1))
        return [rows[i : i + per] for i in range(0, len(rows), per)]

    def _forward_backoff(
        self,
        dev_index: int,
        rows: np.ndarray,
        ids: list[list[int]],
        lengths: np.ndarray,
        pad_to: int | None,
        pooling: str,
        token_caps: list[int | None],
    ) -> np.ndarray:
        """Forward ``rows``; on out-of-memory, halve the batch and retry.

        Halving goes down to one row; the vectors equal those of an unsplit
        batch (masked pooling does not depend on the padding). The largest
        batch that failed is remembered per device (``token_caps``) so that
        later batches are cut before they fail. One row that does not fit
        raises ``torch.OutOfMemoryError`` naming the device and the remedies.
        """
        device = self.devices[dev_index]
        width = pad_to or int(lengths[rows].max())
        try:
            return self._forward(dev_index, rows, ids, lengths, pad_to, pooling)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            if len(rows) == 1:
                _release_memory(device)
                raise torch.cuda.OutOfMemoryError(
                    f"out of memory on device {device!r} embedding a single text of "
                    f"{width} tokens (batches were already halved down to one "
                    "text). Lower max_length (or max_tokens_per_batch), load the "
                    "model with quantization='4bit' or '8bit', use "
                    "torch_dtype='bfloat16', or free memory on this device."
                ) from exc
        # Retry outside the except block: the exception's traceback holds the
        # failed batch's activations, which must be freed before the retry.
        _release_memory(device)
        half = (len(rows) + 1) // 2
        cap = half * width
        if token_caps[dev_index] is None or cap < token_caps[dev_index]:
            token_caps[dev_index] = cap
        logger.warning(
            "Out of memory on %s with %d rows x %d tokens; retrying with %d rows",
            device,
            len(rows),
            width,
            half,
        )
        first = self._forward_backoff(
            dev_index, rows[:half], ids, lengths, pad_to, pooling, token_caps
        )
        second = self._forward_backoff(
            dev_index, rows[half:], ids, lengths, pad_to, pooling, token_caps
        )
        return np.concatenate([first, second])

    def _forward(
        self,
        dev_index: int,
        rows: np.ndarray,
        ids: list[list[int]],
        lengths: np.ndarray,
        pad_to: int | None,
        pooling: str,
    ) -> np.ndarray:
        model = self.models[dev_index]
        device = self.devices[dev_index]
        # max(..., 1): a tokenizer that adds no special token gives "" no token
        width = max(pad_to or int(lengths[rows].max()), 1)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            n = int(lengths[r])
            input_ids[j, :n] = torch.as_tensor(ids[r], dtype=torch.long)
            mask[j, :n] = 1
        input_ids = input_ids.to(device, non_blocking=True)
        mask = mask.to(device, non_blocking=True)
        with torch.inference_mode():
            output = model(input_ids=input_ids, attention_mask=mask)
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None:
                hidden = output[0]
            vecs = pool(hidden, mask, pooling).cpu().numpy()
        if not np.isfinite(vecs).all():
            bad = int((~np.isfinite(vecs).all(axis=1)).sum())
            raise FloatingPointError(
                f"non-finite embedding values in {bad} of {len(rows)} rows with dtype "
                f"{str(self.dtype).replace('torch.', '')}; float16 overflows on some "
                "models (Gemma-2 among them): use torch_dtype='bfloat16' or 'float32'"
            )
        return vecs


def _release_memory(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
