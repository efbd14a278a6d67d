# SPDX-License-Identifier: Apache-2.0
"""Names and module paths of gemma-pref 0.1, kept readable in one place.

gemma-pref 0.2 moved its modules into subpackages (``gemma_pref.pairwise`` is now
``gemma_pref.models.pairwise``, ...) and kept only the names most users need at the top level.
Pickles written by 0.1 name the old module paths; :class:`_MovedModuleFinder` answers an import
of an old path with the module's new home (with a :class:`FutureWarning` saying where it moved
and to re-save the file), so ``joblib.load``, :func:`gemma_pref.load` and plain ``pickle`` read
those files. ``save_safe`` folders name their types by stable keys and do not need this.

This module imports nothing from the rest of the package at import time.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "MOVED_OUT", "install", "moved_out"]

#: Version whose layout the aliases below describe.
OLD_LAYOUT_VERSION = "0.1"

#: Module paths of gemma-pref 0.1 and their homes since 0.2.
MOVED_MODULES: dict[str, str] = {
    "gemma_pref.schema": "gemma_pref.data.schema",
    "gemma_pref.readers": "gemma_pref.data.readers",
    "gemma_pref.io": "gemma_pref.data.io",
    "gemma_pref.datasets": "gemma_pref.data.sample",
    "gemma_pref.formatting": "gemma_pref.text.formatting",
    "gemma_pref.budget": "gemma_pref.text.budget",
    "gemma_pref.features": "gemma_pref.text.features",
    "gemma_pref._loading": "gemma_pref.backend._compute",  # ComputePath, DeviceFacts
    "gemma_pref._onnx": "gemma_pref.backend._onnx",
    "gemma_pref.devices": "gemma_pref.backend.devices",
    "gemma_pref.demo_model": "gemma_pref.backend.default_model",
    "gemma_pref.home_cache": "gemma_pref.backend.home_cache",
    "gemma_pref._engine": "gemma_pref.embedding._engine",
    "gemma_pref.pooling": "gemma_pref.embedding.pooling",
    "gemma_pref.batching": "gemma_pref.embedding.batching",
    "gemma_pref.cache": "gemma_pref.embedding.cache",
    "gemma_pref.pairwise": "gemma_pref.models.pairwise",
    "gemma_pref.blend": "gemma_pref.models.blend",
    "gemma_pref.finetune": "gemma_pref.models.finetune",
    "gemma_pref._training": "gemma_pref.models._training",
    "gemma_pref.augmentation": "gemma_pref.models.augmentation",
    "gemma_pref._catboost": "gemma_pref.models._catboost",
    "gemma_pref._symmetric": "gemma_pref.models._symmetric",
    "gemma_pref.model_selection": "gemma_pref.evaluation.model_selection",
    "gemma_pref.plots": "gemma_pref.evaluation.plots",
    "gemma_pref.safe": "gemma_pref.persistence.safe",
}

#: Top-level names of gemma-pref 0.1 that now live only in a subpackage.
MOVED_NAMES: dict[str, str] = {
    "PAIR_TEMPLATE": "gemma_pref.text",
    "SEED_TEMPLATE": "gemma_pref.text",
    "truncation_report": "gemma_pref.text",
    "RECIPES": "gemma_pref.pipeline",
    "make_catboost_classifier": "gemma_pref.pipeline",
    "model_steps": "gemma_pref.pipeline",
    "set_model_params": "gemma_pref.pipeline",
    "make_logreg_classifier": "gemma_pref.models",
    "swap_ab": "gemma_pref.models",
    "clear_memory_cache": "gemma_pref.embedding",
    "labels_from_winner": "gemma_pref.data",
    "swap_labels": "gemma_pref.data",
    "plots": "gemma_pref.evaluation",
    "preference_scores": "gemma_pref.evaluation",
    "prompt_groups": "gemma_pref.evaluation",
    "ArenaFormatError": "gemma_pref.exceptions",
    "CacheIntegrityWarning": "gemma_pref.exceptions",
    "CacheWriteWarning": "gemma_pref.exceptions",
    "DeviceWorkerError": "gemma_pref.exceptions",
    "MissingCellsWarning": "gemma_pref.exceptions",
    "ModelNotFoundError": "gemma_pref.exceptions",
    "SafeFormatError": "gemma_pref.exceptions",
    "TruncationWarning": "gemma_pref.exceptions",
    "VersionMismatchWarning": "gemma_pref.exceptions",
}


#: Names a 0.1 module defined that the module now answering its path no longer holds, by
#: that module: ``gemma_pref.formatting`` is ``gemma_pref.text.formatting`` now, and its
#: ``truncation_report`` moved on to ``gemma_pref.text.truncation``. Each such module's
#: ``__getattr__`` calls :func:`moved_out`, so an import or a pickle of the 0.1 path finds them.
MOVED_OUT: dict[str, dict[str, str]] = {
    "gemma_pref": MOVED_NAMES,  # the top level's own __getattr__
    "gemma_pref.text.formatting": {"truncation_report": "gemma_pref.text.truncation"},
    "gemma_pref.evaluation": {
        "FoldResult": "gemma_pref.evaluation.cross_validation",
        "cv_splits": "gemma_pref.evaluation.cross_validation",
    },
}


def moved_out(module: str, name: str) -> Any:
    """Return ``name``, which 0.1's ``module`` held before it moved on (with a FutureWarning).

    ``module`` is a module of :data:`MOVED_OUT` (``"gemma_pref"`` for 0.1's top-level names,
    :data:`MOVED_NAMES`). Raises :class:`AttributeError` for any other name, as a module does.
    """
    home = MOVED_OUT.get(module, {}).get(name)
    if home is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{module}.{name} moved to {home}.{name} in gemma-pref 0.2; "
        f"import it from there (`from {home} import {name}`).",
        FutureWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(home), name)


class _AliasLoader(importlib.abc.Loader):
    """Load an old module path as the module at its new home."""

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name
        self.real_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} is a module path of gemma-pref {OLD_LAYOUT_VERSION}; it moved to "
            f"{self.new_name}. Files pickled by gemma-pref {OLD_LAYOUT_VERSION} still load "
            "through this alias: load them and save them again with this version "
            "(gemma_pref.save or gemma_pref.save_safe) so they name the new paths.",
            FutureWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.new_name)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module at the new home is already executed. The import machinery has
        # just pointed its __spec__ at the alias; point it back at the real module.
        module.__spec__ = self.real_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Find 0.1 module paths of gemma_pref (see :data:`MOVED_MODULES`)."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new_name))


def install() -> None:
    """Put the finder of old module paths on :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
