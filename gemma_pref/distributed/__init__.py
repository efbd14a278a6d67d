# SPDX-License-Identifier: Apache-2.0
"""Embedding and prediction beyond one machine, on Ray Data.

:func:`embed_dataset` and :func:`predict_dataset` run fitted estimators in a pool of Ray actors,
one model replica per actor; :func:`read_preferences_dataset` reads every public form of the
task into a Ray Dataset of arena rows; :func:`write_parquet` writes a result atomically with a
``_SUCCESS`` marker. Neither torch nor Ray is imported until used
(``pip install "gemma-pref[ray]"``).

gemma-pref's in-process engine runs one model replica per device of one
machine. To embed or pseudo-label hundreds of thousands of conversations on a
cluster, :func:`embed_dataset` and :func:`predict_dataset` run the same
estimators inside a pool of Ray actors (``Dataset.map_batches`` with
``compute=ActorPoolStrategy``): one model replica per actor, one actor per GPU
by default. Each Ray batch goes through the actor's own estimator, so the
embedder's length sorting and token budgets apply within the batch.

Each actor sees only the GPUs Ray gave it: the devices of every model step
are mapped onto them (:func:`actor_devices`), so an estimator built for a
2-GPU machine runs on the actor's one GPU, or on its CPU in a CPU actor.

The estimators travel to the actors as their weight-free pickles; each actor
loads the checkpoint from ``model_name_or_path`` on its first batch, so the
checkpoint must exist at that path on every node (shared storage, or the same
copy on each node). A node without it fails the job with
:class:`CheckpointMissingError` naming the path and the node.

Ray restarts an actor whose process dies and retries its batches; an error in
the data (a cell that is not a JSON list, ...) is not retried: it fails the job
with the row's id and the column. :func:`write_parquet` writes the result
atomically, with a ``_SUCCESS`` marker, so a failed job leaves nothing that
looks complete.

The package's private modules: ``_cluster`` (joining Ray, an actor's devices,
:class:`CheckpointMissingError`, the error raised in a worker), ``_inference``
(the actor pool, :func:`embed_dataset`, :func:`predict_dataset`), ``_datasets``
(:func:`read_arena_dataset`, :func:`read_preferences_dataset`) and ``_output``
(:func:`write_parquet` and its ``_SUCCESS`` manifest).
"""

from __future__ import annotations

from ._cluster import CheckpointMissingError, actor_devices, connect
from ._datasets import read_arena_dataset, read_preferences_dataset
from ._inference import embed_dataset, predict_dataset
from ._output import SUCCESS_FILE, write_parquet

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
