# SPDX-License-Identifier: Apache-2.0
"""Saving and loading fitted estimators.

:func:`save` / :func:`load` write joblib pickles stamped with the versions that wrote them;
:func:`save_safe` / :func:`load_safe` write a folder of JSON and arrays that loads without
running code from the file.
"""

from __future__ import annotations

from .pickles import load, save
from .safe import load_safe, save_safe

__all__ = ["load", "load_safe", "save", "save_safe"]
