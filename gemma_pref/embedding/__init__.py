# SPDX-License-Identifier: Apache-2.0
"""The embedding engine: :class:`GemmaEmbedder`, its batching, pooling and caches.

:class:`GemmaEmbedder` turns texts into pooled hidden states of a decoder (any layer or a set of
layers), batched by length, cached in memory and on disk, on PyTorch or ONNX Runtime
(:mod:`gemma_pref.backend` loads the model).
"""

from __future__ import annotations

from .cache import clear_memory_cache, verify_disk_cache
from .embedder import GemmaEmbedder
from .pooling import POOLING_MODES

__all__ = ["POOLING_MODES", "GemmaEmbedder", "clear_memory_cache", "verify_disk_cache"]
