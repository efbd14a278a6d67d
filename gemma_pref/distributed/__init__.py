# SPDX-License-Identifier: Apache-2.0
"""Embedding and prediction beyond one machine, on Ray Data.

:func:`embed_dataset` and :func:`predict_dataset` run fitted estimators in a pool of Ray actors,
one model replica per actor; :func:`read_preferences_dataset` reads every public form of the
task into a Ray Dataset of arena rows; :func:`write_parquet` writes a result atomically with a
``_SUCCESS`` marker. Neither torch nor Ray is imported until used
(``pip install "gemma-pref[ray]"``).
"""

from __future__ import annotations

from ._ray import (
    SUCCESS_FILE,
    CheckpointMissingError,
    actor_devices,
    connect,
    embed_dataset,
    predict_dataset,
    read_arena_dataset,
    read_preferences_dataset,
    write_parquet,
)

__all__ = [
    "SUCCESS_FILE",
    "CheckpointMissingError",
    "actor_devices",
    "connect",
    "embed_dataset",
    "predict_dataset",
    "read_arena_dataset",
    "read_preferences_dataset",
    "write_parquet",
]
