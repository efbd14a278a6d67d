# SPDX-License-Identifier: Apache-2.0
"""The Ray cluster: joining it, the devices an actor sees, what failed in a worker.

Ray is imported only when used (:func:`require_ray`), with a hint at the extra
that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..exceptions import ModelNotFoundError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CheckpointMissingError",
    "actor_devices",
    "connect",
    "require_ray",
    "root_cause",
]

#: Rows per Ray batch: large enough for the embedder's length sorting to pay
#: off within a batch, small enough for a retried batch to be cheap.
DEFAULT_BATCH_SIZE = 256


class CheckpointMissingError(ModelNotFoundError):
    """Raised in a Ray actor whose node lacks the estimator's checkpoint."""


def require_ray() -> Any:
    """Import Ray and Ray Data, or say which extra installs them."""
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
    ray = require_ray()
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
