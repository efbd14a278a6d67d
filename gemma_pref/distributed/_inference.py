# SPDX-License-Identifier: Apache-2.0
"""Embedding and prediction in a pool of Ray actors, one model replica each.

:func:`embed_dataset` and :func:`predict_dataset` map a Ray Dataset through
actors (``Dataset.map_batches`` with ``compute=ActorPoolStrategy``) that each
hold a weight-free estimator, placed on the actor's own devices and loaded on
its first batch.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np

from ..data.schema import WINNER_COLUMNS
from ..exceptions import ModelNotFoundError
from ._cluster import (
    DEFAULT_BATCH_SIZE,
    CheckpointMissingError,
    actor_devices,
    connect,
    require_ray,
)

__all__ = ["CRASH_ONCE_ENV", "embed_dataset", "predict_dataset"]

#: Fault injection for tests and drills: set in the driver's environment to
#: the path of a marker file when a job is built. The first actor that finds no
#: file there creates it and kills its own process on its first batch; Ray
#: restarts the actor and retries the batch.
CRASH_ONCE_ENV = "GEMMA_PREF_RAY_CRASH_ONCE"


def _visible_gpus() -> list[int]:
    """The actor's GPUs, numbered as torch sees them in the actor."""
    import ray

    ids = ray.get_gpu_ids()
    if os.environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES", "0") not in ("", "0"):
        return [int(i) for i in ids]  # Ray left every GPU visible: its own numbers
    return list(range(len(ids)))


def _place(estimator: Any) -> None:
    """Point every model step of ``estimator`` at what this actor sees."""
    from ..pipeline.steps import model_steps

    visible = _visible_gpus()
    for step in model_steps(estimator):
        step.set_params(devices=actor_devices(step.devices, visible))


class _Worker:
    """One Ray actor: a weight-free estimator, loaded on its first batch."""

    def __init__(self, crash_marker: str | None, blob: bytes, id_column: str) -> None:
        self.estimator = pickle.loads(blob)
        _place(self.estimator)  # devices resolve against the actor's own GPUs
        self.id_column = id_column
        self.crash_marker = crash_marker

    @staticmethod
    def _node() -> str:
        import ray

        node = ray.get_runtime_context().get_node_id()
        return f"host {socket.gethostname()!r} (Ray node {node[:12]})"

    def _crash_once(self) -> None:
        marker = self.crash_marker
        if marker and not os.path.exists(marker):
            Path(marker).write_text(f"actor pid {os.getpid()} exited on purpose\n")
            os._exit(1)

    def _rows(self, batch: Any) -> Any:
        """The batch indexed by its ids, so that errors about a row name its id."""
        if self.id_column not in batch.columns:
            raise ValueError(
                f"the dataset has no {self.id_column!r} column (columns: "
                f"{[str(c) for c in batch.columns]}); pass id_column="
            )
        rows = batch.set_index(batch[self.id_column].to_numpy(), drop=False)
        rows.index.name = self.id_column
        return rows

    def _run(self, fn: Any, rows: Any) -> Any:
        self._crash_once()
        try:
            return fn(rows)
        except ModelNotFoundError as exc:
            raise CheckpointMissingError(
                f"on {self._node()}: {exc} Every node of the Ray cluster needs the "
                "checkpoint at the same path (shared storage, or a copy on each node)."
            ) from exc


class _EmbedWorker(_Worker):
    def __init__(
        self,
        crash_marker: str | None,
        blob: bytes,
        id_column: str,
        text_column: str,
        formatter: bytes | None,
    ) -> None:
        super().__init__(crash_marker, blob, id_column)
        self.text_column = text_column
        self.formatter = None if formatter is None else pickle.loads(formatter)

    def _embed(self, rows: Any) -> np.ndarray:
        if self.formatter is not None:
            texts = self.formatter.transform(rows)
        elif self.text_column not in rows.columns:
            raise ValueError(
                f"the dataset has no {self.text_column!r} column (columns: "
                f"{[str(c) for c in rows.columns]}); pass text_column=, or a "
                "formatter for arena rows"
            )
        else:
            texts = rows[self.text_column]
        return np.asarray(self.estimator.transform(texts), dtype=np.float32)

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        rows = self._rows(batch)
        vectors = self._run(self._embed, rows)
        return {self.id_column: rows[self.id_column].to_numpy(), "embedding": vectors}


class _PredictWorker(_Worker):
    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        rows = self._rows(batch)
        proba = np.asarray(self._run(self.estimator.predict_proba, rows), dtype=np.float64)
        if proba.shape != (len(rows), len(WINNER_COLUMNS)):
            raise ValueError(
                f"predict_proba returned shape {proba.shape}; expected "
                f"({len(rows)}, {len(WINNER_COLUMNS)}): a preference pipeline"
            )
        out = {self.id_column: rows[self.id_column].to_numpy()}
        out.update({name: proba[:, i] for i, name in enumerate(WINNER_COLUMNS)})
        return out


def _pool(
    num_replicas: int | None,
    num_gpus_per_replica: float | None,
    num_cpus_per_replica: float | None,
) -> tuple[Any, dict[str, Any]]:
    """The actor pool: one replica per GPU when the cluster has GPUs."""
    ray = require_ray()
    from ray.data import ActorPoolStrategy

    if num_replicas is not None and (isinstance(num_replicas, bool) or int(num_replicas) < 1):
        raise ValueError(f"num_replicas must be a positive integer or None, got {num_replicas!r}")
    for name, value in (
        ("num_gpus_per_replica", num_gpus_per_replica),
        ("num_cpus_per_replica", num_cpus_per_replica),
    ):
        if value is not None and not value >= 0:
            raise ValueError(f"{name} must be >= 0 or None, got {value!r}")
    connect()
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0))
    if num_gpus_per_replica is None:
        num_gpus_per_replica = 1.0 if gpus else 0.0
    if num_replicas is None:
        num_replicas = max(1, int(gpus // num_gpus_per_replica)) if num_gpus_per_replica else 1
    cpus = 1.0 if num_cpus_per_replica is None else float(num_cpus_per_replica)
    reserved = cpus * int(num_replicas)
    if reserved and reserved >= float(total.get("CPU", 0)):
        # the pool would take every CPU: the read tasks never run, the job waits forever
        raise ValueError(
            f"{num_replicas} replica(s) x {cpus:g} CPU reserve all {total.get('CPU', 0):g} "
            "CPUs of the Ray cluster, leaving none to read the data; lower num_replicas or "
            "num_cpus_per_replica (fractions are allowed), or give Ray more logical CPUs "
            "(ray.init(num_cpus=...))"
        )
    # Ray sets OMP_NUM_THREADS in the actor from its CPUs: torch uses that many threads
    resources: dict[str, Any] = {"num_cpus": cpus}
    if num_gpus_per_replica:
        resources["num_gpus"] = num_gpus_per_replica
    return ActorPoolStrategy(size=int(num_replicas)), resources


def _map(
    dataset: Any,
    worker: type,
    args: tuple[Any, ...],
    pool: tuple[int | None, float | None, float | None],
    batch_size: int | None,
) -> Any:
    """``dataset.map_batches`` through a pool of ``worker`` actors.

    Estimators in ``args`` travel pickled (weight-free). Errors in the actors
    reach the caller as their own type (an :class:`~gemma_pref.exceptions.ArenaFormatError`
    stays one), not as Ray's generic ``UserCodeException``.
    """
    require_ray()
    size = _check_batch_size(batch_size)
    compute, resources = _pool(*pool)
    # estimators travel pickled, column names as they are
    blobs = tuple(a if a is None or isinstance(a, str) else pickle.dumps(a) for a in args)
    out = dataset.map_batches(
        worker,
        fn_constructor_args=(os.environ.get(CRASH_ONCE_ENV), *blobs),
        batch_size=size,
        batch_format="pandas",
        compute=compute,
        **resources,
    )
    out.context.raise_original_map_exception = True
    return out


def _check_batch_size(batch_size: int | None) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return int(batch_size)


def embed_dataset(
    dataset: Any,
    embedder: Any,
    *,
    formatter: Any = None,
    text_column: str = "text",
    id_column: str = "id",
    num_replicas: int | None = None,
    num_gpus_per_replica: float | None = None,
    num_cpus_per_replica: float | None = None,
    batch_size: int | None = None,
) -> Any:
    """Embed a Ray Dataset with a pool of :class:`~gemma_pref.GemmaEmbedder` actors.

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows with an id column and either a text column or, with
        ``formatter``, the arena columns ``prompt``, ``response_a``,
        ``response_b``.
    embedder : GemmaEmbedder
        Sent to each actor as its weight-free pickle; each actor loads the
        checkpoint from ``model_name_or_path`` once, on its first batch. Its
        ``batch_size`` / ``max_tokens_per_batch`` plan the forward passes
        within each Ray batch, and its disk cache (``cache_dir``) is used by
        every actor that can reach it.
    formatter : ArenaTextFormatter or None, default=None
        Format arena rows into texts inside the actors. With
        ``layout="pair"`` the two answers' vectors are concatenated.
    text_column : str, default="text"
        The texts, when no ``formatter`` is given.
    id_column : str, default="id"
        Kept in the output, which has one row per input row. Ray does not keep
        the order of rows: join on the id.
    num_replicas : int or None, default=None
        Actors in the pool. ``None``: one per GPU of the cluster, else one.
    num_gpus_per_replica : float or None, default=None
        GPUs per actor. ``None``: 1 when the cluster has GPUs, else 0.
    num_cpus_per_replica : float or None, default=None
        CPUs per actor (``None``: 1). Ray sets the actor's ``OMP_NUM_THREADS``
        from it, so it is also the number of torch threads of a CPU replica.
        The pool must leave a CPU of the cluster free for the read tasks.
    batch_size : int or None, default=None
        Rows per Ray batch (:data:`DEFAULT_BATCH_SIZE`).

    Returns
    -------
    dataset : ray.data.Dataset
        Lazy; columns ``id_column`` and ``embedding`` (a float32 vector per
        row). Consume it with :func:`write_parquet`, ``take_all``, ...

    Examples
    --------
    >>> import ray  # doctest: +SKIP
    >>> from gemma_pref import ArenaTextFormatter, GemmaEmbedder
    >>> from gemma_pref.distributed import embed_dataset, read_arena_dataset, write_parquet
    >>> rows = read_arena_dataset("train.csv")  # doctest: +SKIP
    >>> out = embed_dataset(rows, GemmaEmbedder("/models/gemma-2-9b"),
    ...                     formatter=ArenaTextFormatter())  # doctest: +SKIP
    >>> write_parquet(out, "embeddings/")  # doctest: +SKIP
    """
    return _map(
        dataset,
        _EmbedWorker,
        (embedder, id_column, text_column, formatter),
        (num_replicas, num_gpus_per_replica, num_cpus_per_replica),
        batch_size,
    )


def predict_dataset(
    dataset: Any,
    pipeline: Any,
    *,
    id_column: str = "id",
    num_replicas: int | None = None,
    num_gpus_per_replica: float | None = None,
    num_cpus_per_replica: float | None = None,
    batch_size: int | None = None,
) -> Any:
    """Apply a fitted gemma-pref pipeline to arena rows with a pool of Ray actors.

    Parameters
    ----------
    dataset : ray.data.Dataset
        Arena rows (``id``, ``prompt``, ``response_a``, ``response_b``, and
        whatever else the pipeline reads).
    pipeline : estimator
        A fitted pipeline of any recipe (or any fitted classifier of arena
        rows with ``predict_proba``). It travels as its weight-free pickle;
        each actor reloads the checkpoint from its path on its first batch.
    id_column, num_replicas, num_gpus_per_replica, num_cpus_per_replica, batch_size
        As for :func:`embed_dataset`.

    Returns
    -------
    dataset : ray.data.Dataset
        Lazy; columns ``id_column``, ``winner_model_a``, ``winner_model_b``,
        ``winner_tie`` (float64 probabilities, rows summing to 1).
    """
    return _map(
        dataset,
        _PredictWorker,
        (pipeline, id_column),
        (num_replicas, num_gpus_per_replica, num_cpus_per_replica),
        batch_size,
    )
