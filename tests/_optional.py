"""Optional dependencies of the tests: a skip when missing, a failure when broken.

``pytest.importorskip`` also skips when the package is installed but its import
fails on a missing package of its own; a broken optional dependency would then
hide its tests behind a skip. :func:`require` skips only when the package is not
installed at all, and lets every error of an installed one fail the test.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import pytest


def require(name: str, extra: str) -> ModuleType:
    """Import and return the top-level module ``name`` of the ``[extra]`` extra.

    Skips the calling test, or module when called at module level, only when
    ``name`` is not installed; an installed ``name`` that fails to import
    raises its error.
    """
    if importlib.util.find_spec(name) is None:
        pytest.skip(
            f"{name} is not installed (pip install 'gemma-pref[{extra}]')",
            allow_module_level=True,
        )
    return importlib.import_module(name)
