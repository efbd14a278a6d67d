# SPDX-License-Identifier: Apache-2.0
"""Where models come from and what they run on.

Finding and loading checkpoints (local folders, the Hugging Face Hub, the default model converted
from its GGUF package), fingerprints, layer truncation, the dtype/device/backend policy, the ONNX
Runtime export and its int8 weights, several devices, and the files all of this keeps under
``GEMMA_PREF_HOME``. Estimators reach it through :class:`gemma_pref.embedding.GemmaEmbedder` and
:class:`gemma_pref.models.GemmaPreferenceClassifier`; torch and transformers are imported on use.
"""

from __future__ import annotations

from .default_model import DEFAULT_MODEL, demo_model_path, gemma_pref_home
from .devices import resolve_devices
from .home_cache import find_entries, list_cache, remove_entries

__all__ = [
    "DEFAULT_MODEL",
    "demo_model_path",
    "find_entries",
    "gemma_pref_home",
    "list_cache",
    "remove_entries",
    "resolve_devices",
]
