# SPDX-License-Identifier: Apache-2.0
"""Embedding and prediction beyond one machine, on Ray Data.

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

This module imports neither torch nor Ray at import time; Ray comes with
``pip install "gemma-pref[ray]"``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._ownership import foreign_files, refuse_replacing
from ..data.schema import ARENA_COLUMNS, WINNER_COLUMNS, where
from ..exceptions import ArenaFormatError, ModelNotFoundError

__all__ = [
    "CRASH_ONCE_ENV",
    "DEFAULT_BATCH_SIZE",
    "SUCCESS_FILE",
    "PARQUET_FORMAT",
    "CheckpointMissingError",
    "actor_devices",
    "connect",
    "embed_dataset",
    "own_parquet_files",
    "predict_dataset",
    "read_arena_dataset",
    "read_preferences_dataset",
    "root_cause",
    "write_parquet",
]

#: Rows per Ray batch: large enough for the embedder's length sorting to pay
#: off within a batch, small enough for a retried batch to be cheap.
DEFAULT_BATCH_SIZE = 256
#: Fault injection for tests and drills: set in the driver's environment to
#: the path of a marker file when a job is built. The first actor that finds no
#: file there creates it and kills its own process on its first batch; Ray
#: restarts the actor and retries the batch.
CRASH_ONCE_ENV = "GEMMA_PREF_RAY_CRASH_ONCE"
#: Written last into an output directory of :func:`write_parquet`.
SUCCESS_FILE = "_SUCCESS"


class CheckpointMissingError(ModelNotFoundError):
    """Raised in a Ray actor whose node lacks the estimator's checkpoint."""


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "gemma_pref.distributed needs Ray Data: pip install 'gemma-pref[ray]'"
        ) from exc
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> Any:
    """Join a Ray cluster, or start a local one; a no-op when Ray is already up.

    Parameters
    ----------
    address : str or None, default=None
        ``ray.init``'s address: ``None`` starts a local Ray (or joins the one
        the ``RAY_ADDRESS`` environment variable names), ``"auto"`` joins the
        cluster of this node, ``"ray://head:10001"`` a remote one.
    **init_kwargs
        Passed to ``ray.init`` (``num_cpus``, ``runtime_env``, ...).

    Returns
    -------
    ray : module
    """
    ray = _ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, **{"include_dashboard": False, **init_kwargs})
    return ray


def actor_devices(devices: Any, visible_gpus: Sequence[int]) -> Any:
    """The ``devices`` an estimator runs on inside a Ray actor.

    An actor sees only the GPUs Ray gave it (``CUDA_VISIBLE_DEVICES``): the
    first is ``cuda:0`` there, whatever its number on the node. So an
    estimator built for the node (``devices=["cuda:0", "cuda:1"]``, the
    Kaggle 2xT4 setting, or ``"auto"``) runs on the actor's own GPUs, and on
    the CPU in an actor without one. An estimator asked to run on the CPU (or
    another non-CUDA device) keeps that device, once: one replica per actor.

    Parameters
    ----------
    devices : "auto", str or list of str
        The estimator's ``devices`` parameter.
    visible_gpus : sequence of int
        The CUDA indices of the actor's GPUs as torch numbers them in the
        actor (``0 .. n-1`` under Ray's ``CUDA_VISIBLE_DEVICES``).

    Returns
    -------
    devices : list of str, or ``devices`` unchanged when it is not a device
        specification (the estimator then reports it).

    Examples
    --------
    >>> actor_devices(["cuda:0", "cuda:1"], [0])
    ['cuda:0']
    >>> actor_devices("auto", []), actor_devices(["cpu", "cpu"], [0])
    (['cpu'], ['cpu'])
    """
    entries = [devices] if isinstance(devices, str) else devices
    if not isinstance(entries, (list, tuple)) or not entries:
        return devices
    if not all(isinstance(e, str) for e in entries):
        return devices
    if any(e == "auto" or e.split(":")[0] == "cuda" for e in entries):
        return [f"cuda:{int(i)}" for i in visible_gpus] or ["cpu"]
    return [entries[0]]


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
    ray = _ray()
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
    _ray()
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


def root_cause(exc: BaseException) -> BaseException:
    """The exception raised in a Ray worker, for one-line reports (the CLI)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException):
            break
        exc = cause
    return exc


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


def _listing(items: list[str]) -> set[str]:
    suffixes: set[str] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            suffixes |= {
                f.suffix.lower()
                for f in path.iterdir()
                if f.is_file() and not f.name.startswith((".", "_"))
            }
        elif path.is_file():
            suffixes.add(path.suffix.lower())
        else:
            raise FileNotFoundError(f"arena input {item!r} does not exist")
    return suffixes


def read_arena_dataset(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: str = "auto",
    cell_format: str = "auto",
    random_state: Any = 0,
) -> Any:
    """Read preference rows as a Ray Dataset of arena rows: CSV or Parquet shards.

    Each Ray batch goes through :func:`~gemma_pref.read_preferences` with
    ``format`` and ``cell_format``, so the rows reach the actors as the
    in-process path reads them (:func:`read_preferences_dataset`). CSV cells
    may hold newlines (the Kaggle files do); text columns are read as
    strings, never type-inferred, and only an empty field is missing
    (``NA`` or ``null`` are text).

    Parameters
    ----------
    paths : path or list of paths
        Local or shared-filesystem paths: files, or directories of ``.csv`` or
        ``.parquet`` shards (names starting with ``.`` or ``_`` are skipped).
    format, cell_format, random_state
        As for :func:`~gemma_pref.read_preferences`.

    Returns
    -------
    dataset : ray.data.Dataset
        Arena rows: ``id`` (where the data has ids), ``prompt``,
        ``response_a``, ``response_b`` as JSON lists of turns, labels and the
        other columns, as :func:`~gemma_pref.read_preferences` returns them.
    """
    ray = _ray()
    if isinstance(paths, (str, os.PathLike)):
        items = [os.fspath(paths)]
    else:
        items = [os.fspath(p) for p in paths]
    if not items:
        raise ValueError("read_arena_dataset needs at least one path")
    suffixes = _listing(items)
    if suffixes == {".parquet"}:
        raw = ray.data.read_parquet(items, file_extensions=["parquet"])
    elif suffixes == {".csv"}:
        import pyarrow as pa
        from pyarrow import csv

        strings = {c: pa.string() for c in _TEXT_COLUMNS}
        raw = ray.data.read_csv(
            items,
            file_extensions=["csv"],
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types=strings,
                # as the in-process reader: only an empty field is missing
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
    else:
        raise ValueError(
            f"arena input {items!r} holds {sorted(suffixes) or 'no'} files; expected CSV "
            "(.csv) or Parquet (.parquet) files, not both"
        )
    return read_preferences_dataset(
        raw, format=format, cell_format=cell_format, random_state=random_state
    )


#: Text columns of every format, read from CSV as strings.
_TEXT_COLUMNS = (
    *ARENA_COLUMNS,
    "model_a",
    "model_b",
    "chosen",
    "rejected",
    "conversation_a",
    "conversation_b",
)


def _read_batch(
    batch: Any, *, format: str, cell_format: str, random_state: Any, expected: Any
) -> Any:
    """``read_preferences`` of one Ray batch, checked against the first batch's reading."""
    from ..data.readers import FORMAT_ATTR, SOURCE_CELLS_ATTR, read_preferences

    frame, _ = read_preferences(batch, format, cell_format=cell_format, random_state=random_state)
    got = (frame.attrs[FORMAT_ATTR], frame.attrs[SOURCE_CELLS_ATTR])
    if got != expected:
        first = where(batch, 0) if len(batch) else "an empty batch"
        raise ArenaFormatError(
            f"the rows from {first} on read as the {got[0]!r} format with cells "
            f"{got[1]}, the dataset's first rows as {expected[0]!r} with {expected[1]}: "
            "one rule must read the whole dataset; pass format= and cell_format= (CLI: "
            "--format, --cell-format) to settle it",
            column=next(iter(got[1]), ""),
            row=batch.index[0] if len(batch) else None,
        )
    frame.attrs = {}  # Arrow blocks carry no attrs: the cells are JSON lists now
    return frame.reset_index(drop=True)


def read_preferences_dataset(
    dataset: Any,
    *,
    format: str = "auto",
    cell_format: str = "auto",
    random_state: Any = 0,
) -> Any:
    """Map a Ray Dataset of preference rows through :func:`~gemma_pref.read_preferences`.

    The first rows are read in the driver, so a malformed file fails before
    any actor starts and ``"auto"`` settles on a format and a cell rule; each
    batch is then read the same way in Ray tasks and must come to the same
    format and rule: a batch that reads otherwise (a file that mixes
    encodings, a shard of another format) fails the job, naming its first row
    and the parameters that settle it.

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows in any format :func:`~gemma_pref.read_preferences` reads.
    format, cell_format, random_state
        As for :func:`~gemma_pref.read_preferences` (``random_state`` seeds
        the A/B order of chosen/rejected pairs of each batch).

    Returns
    -------
    dataset : ray.data.Dataset
        Lazy arena rows.
    """
    from ..data.readers import FORMAT_ATTR, SOURCE_CELLS_ATTR, read_preferences

    first = dataset.take_batch(DEFAULT_BATCH_SIZE, batch_format="pandas")
    frame, _ = read_preferences(first, format, cell_format=cell_format, random_state=random_state)
    expected = (frame.attrs[FORMAT_ATTR], frame.attrs[SOURCE_CELLS_ATTR])
    out = dataset.map_batches(
        _read_batch,
        fn_kwargs={
            "format": format,
            "cell_format": cell_format,
            "random_state": random_state,
            "expected": expected,
        },
        batch_format="pandas",
    )
    out.context.raise_original_map_exception = True  # an ArenaFormatError stays one
    return out


#: The ``format`` of the ``_SUCCESS`` manifest :func:`write_parquet` writes.
PARQUET_FORMAT = "gemma-pref-parquet"


def own_parquet_files(folder: Path) -> set[str] | None:
    """The files a :func:`write_parquet` output says it holds (its ``_SUCCESS``
    manifest), or ``None`` when ``folder`` is not one."""
    try:
        marker = json.loads((folder / SUCCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if marker.get("format") == PARQUET_FORMAT and isinstance(marker.get("files"), list):
        return {SUCCESS_FILE, *map(str, marker["files"])}
    if {"rows", "files", "path"} <= set(marker) and isinstance(marker["files"], int):
        # an earlier release's marker: it counted its shards, all of them .parquet
        shards = {p.name for p in folder.glob("*.parquet")}
        return {SUCCESS_FILE, *shards} if len(shards) == marker["files"] else None
    return None


def write_parquet(
    dataset: Any, path: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Any]:
    """Run ``dataset`` and write it as Parquet shards plus a ``_SUCCESS`` marker.

    The shards go to a hidden sibling directory first; only when every shard
    is written does the marker go in and the directory take its name, so a
    failed or interrupted job never leaves a directory that looks complete,
    and a rerun never mixes old and new shards.

    Parameters
    ----------
    dataset : ray.data.Dataset
    path : path
        The output directory, on a filesystem every Ray node writes to (local
        for a single machine, shared storage for a cluster).
    overwrite : bool, default=False
        Replace an existing output directory, but only one this function
        wrote: its ``_SUCCESS`` is the library's manifest and it holds nothing
        but the files that manifest lists. A folder of your own Parquet files
        (your input dataset, say), a folder with anything else in it, or a
        file is never replaced.

    Returns
    -------
    summary : dict
        ``format``, ``rows``, ``files`` (the shard names), ``path`` and
        ``written``, as written into the marker.
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{str(out)!r} already exists; pass overwrite=True to replace it")
        if not out.is_dir():
            raise FileExistsError(f"{str(out)!r} is a file; expected an output directory")
        own = own_parquet_files(out)
        if own is None:
            raise refuse_replacing(
                out,
                "an output of gemma_pref.distributed.write_parquet",
                f"no {SUCCESS_FILE} of its own",
            )
        foreign = foreign_files(out, own)
        if foreign:
            raise refuse_replacing(
                out,
                "only what write_parquet wrote",
                f"it also holds {foreign[:5]}{' ...' if len(foreign) > 5 else ''}",
            )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory's parent {str(parent)!r} does not exist")
    token = uuid.uuid4().hex[:12]
    tmp = parent / f".{out.name}.incomplete-{token}"
    try:
        dataset.write_parquet(str(tmp))
        import pyarrow.parquet as pq

        shards = sorted(tmp.glob("*.parquet"))
        summary = {
            "format": PARQUET_FORMAT,
            "rows": int(sum(pq.ParquetFile(f).metadata.num_rows for f in shards)),
            "files": [f.name for f in shards],
            "path": str(out),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / SUCCESS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        if out.exists():
            old = parent / f".{out.name}.replaced-{token}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
