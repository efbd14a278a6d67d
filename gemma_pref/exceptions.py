# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by gemma-pref.

Hierarchy::

    Exception
    ├── ValueError
    │   └── ArenaFormatError          a cell is not a JSON list of strings
    ├── RuntimeError
    │   └── DeviceWorkerError         the forward pass failed on one device
    └── OSError
        └── ModelNotFoundError        the model path is not a local checkpoint
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArenaFormatError", "DeviceWorkerError", "ModelNotFoundError"]


class ArenaFormatError(ValueError):
    """Raised when an arena cell is not a JSON list of strings (or nulls).

    Attributes
    ----------
    column : str
        The column of the bad cell.
    row : object
        The index label of the bad row.
    """

    def __init__(self, message: str, *, column: str, row: Any) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


class DeviceWorkerError(RuntimeError):
    """Raised in the caller when embedding failed on one device.

    The original exception is chained as ``__cause__``.

    Attributes
    ----------
    device : str
        The device whose worker failed, e.g. ``"cuda:1"``.
    """

    def __init__(self, message: str, *, device: str) -> None:
        super().__init__(message)
        self.device = device


class ModelNotFoundError(OSError):
    """Raised when ``model_name_or_path`` is not a loadable local checkpoint.

    gemma-pref never downloads weights: pass a local directory (or the name of
    a model already in the local Hugging Face cache).
    """
