# SPDX-License-Identifier: Apache-2.0
"""How :class:`~gemma_pref.embedding.GemmaEmbedder` computes its vectors.

:class:`VectorsMixin` holds the model side of the embedder: its tokenizer, the hidden states it
pools and the decoder layers it runs (:func:`~gemma_pref.embedding._layers.layer_plan`), the
replicas and their head, the width of a vector, the settings that key the embedding cache, and
the forward passes through that cache.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from ..backend import _checkpoints, _compute, _load
from ._checkpoint import CheckpointMixin
from ._layers import check_layer, layer_plan
from ._pair_check import PairCheck
from .cache import EmbeddingCache, settings_fingerprint

__all__ = ["VectorsMixin"]


class VectorsMixin(CheckpointMixin):
    """The model side of :class:`~gemma_pref.embedding.GemmaEmbedder`.

    Expects the embedder's parameters annotated below (and those of
    :class:`~gemma_pref.embedding._checkpoint.CheckpointMixin`).
    """

    batch_size: Any
    max_tokens_per_batch: Any
    layer: Any
    pooling: Any
    padding: Any
    cache_dir: Any
    memory_cache: Any

    def _tokenizer_fingerprint(self) -> str:
        """What the token ids of a text depend on: the tokenizer and ``max_length``."""
        model_dir = self._model_dir()
        return settings_fingerprint(
            {
                "model": _checkpoints.model_fingerprint(model_dir),
                "tokenizer_kwargs": self.tokenizer_kwargs,
                "max_length": int(self.max_length),
            }
        )

    def _tokenizer(self) -> Any:
        """The model's tokenizer without its weights (shared in the process),
        for texts whose vectors all come from the cache."""
        model_dir = self._model_dir()
        if self.tokenizer_kwargs is None:
            from ..text.budget import load_tokenizer_param

            try:  # the one a token budget of this model counts with
                return load_tokenizer_param(model_dir, owner="GemmaEmbedder")
            except ValueError:
                pass  # not a fast tokenizer: loaded on its own below
        key = (str(model_dir), repr(self.tokenizer_kwargs))
        cached = getattr(self, "_lazy_tokenizer", None)
        if cached is None or cached[0] != key:
            cached = (key, _load.load_tokenizer(model_dir, self.tokenizer_kwargs))
            self._lazy_tokenizer = cached
        return cached[1]

    def _embed_texts(
        self, texts: list[str], devices: list[str], check: PairCheck | None = None
    ) -> np.ndarray:
        backend, dtype, _, quantization = self._compute(devices)
        cache = EmbeddingCache.for_model(
            self._model_dir(),
            self._vector_settings(dtype, backend, quantization),
            memory=self.memory_cache,
            cache_dir=self.cache_dir,
            quantization=quantization,
        )

        # token ids computed for the forward pass serve the truncation check
        ids_of: dict[str, list[int]] = {}

        def compute(missing: list[str], on_batch: Any) -> np.ndarray:
            show = self._show_progress()
            runtime = self._runtime(devices, progress=show)
            todo = list(dict.fromkeys([*missing, *(check.texts if check else ())]))
            ids_of.update(zip(todo, runtime.tokenize(todo, self.max_length)))
            from tqdm.auto import tqdm

            with tqdm(total=len(missing), unit="text", desc="Embedding", disable=not show) as bar:
                return runtime.run(
                    missing,
                    self._head(),
                    max_length=self.max_length,
                    batch_size=self.batch_size,
                    max_tokens_per_batch=self.max_tokens_per_batch,
                    padding=self.padding,
                    progress=bar,
                    on_batch=on_batch,
                    ids=[ids_of[t] for t in missing],
                )

        out = cache.embed(texts, self._hidden_size, compute)
        if check is not None:
            from ._engine import tokenize

            check.finish(ids_of, lambda todo: tokenize(self._tokenizer(), todo, self.max_length))
        return out

    def _head(self) -> Any:
        from ._engine import pooling_head

        return pooling_head(self.pooling, self._layer_plan()[0])

    def _runtime(self, devices: list[str], progress: bool = False) -> Any:
        run = self._layer_plan()[1]
        if run is None:
            return self._load_runtime(devices, label="GemmaEmbedder", progress=progress)
        # only the decoder layers up to the deepest one pooled are loaded and run
        return self._load_runtime(
            devices,
            label="GemmaEmbedder",
            progress=progress,
            extra_key=(("decoder_layers", run),),
            num_layers=run,
        )

    def _layer_plan(self) -> tuple[tuple[int, ...] | None, int | None]:
        """``(layers, decoder_layers)``: the hidden states pooled (``None``: the
        last) and how many decoder layers run (``None``: all); validates ``layer``."""
        check_layer(self.layer)
        if isinstance(self.layer, Integral) and self.layer == -1:
            return None, None  # the default reads no configuration
        return layer_plan(self.layer, self._num_hidden_layers, repr(str(self._model_dir())))

    @property
    def _num_hidden_layers(self) -> int | None:
        model_dir = self._model_dir()
        cached = getattr(self, "_lazy_layers", None)
        if cached is None or cached[0] != str(model_dir):
            config = _checkpoints.load_config(model_dir)
            cached = (str(model_dir), _checkpoints.num_hidden_layers_of(config))
            self._lazy_layers = cached
        return cached[1]

    def _auto_int8(self) -> bool:
        # int8 weights were measured faithful in the middle of the model
        # (cosine 0.9996 at states 8-12) but not at the last hidden state
        # (0.925, benchmarks/results/embedding-cpu-bf16.md): float32 there
        return self._layer_plan()[0] is not None

    def _vector_settings(
        self, dtype: Any, backend: str, quantization: str | None = None
    ) -> dict[str, Any]:
        """Every setting that changes the vectors (for the cache key)."""
        # "torch" adds nothing, so that caches written before the backend
        # parameter existed stay valid; nor does the last layer, for "layer"
        backend_key: dict[str, Any] = {} if backend == "torch" else {"backend": backend}
        if backend == "onnxruntime" and quantization == "8bit":
            # ONNX Runtime's int8 weights: their settings depend on the CPU
            backend_key["int8"] = _compute.int8_settings()
        layers = self._layer_plan()[0]
        layer_key = {} if layers is None else {"layers": list(layers)}
        return {
            **backend_key,
            **layer_key,
            "dtype": _compute.dtype_name(dtype),
            "pooling": self.pooling,
            "max_length": int(self.max_length),
            "padding": self.padding,
            "model_kwargs": self.model_kwargs,
            "tokenizer_kwargs": self.tokenizer_kwargs,
        }

    @property
    def _hidden_size(self) -> int:
        model_dir = self._model_dir()
        cached = getattr(self, "_lazy_dim", None)
        if cached is None or cached[0] != str(model_dir):
            cached = (
                str(model_dir),
                _checkpoints.hidden_size_of(_checkpoints.load_config(model_dir)),
            )
            self._lazy_dim = cached
        return cached[1]
