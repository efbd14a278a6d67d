# SPDX-License-Identifier: Apache-2.0
"""A CatBoost classifier that picks its device when it is fitted.

Imported lazily by :func:`gemma_pref.pipeline.make_catboost_classifier`: importing
catboost takes a few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from catboost import CatBoostClassifier

__all__ = ["AutoDeviceCatBoostClassifier", "catboost_gpu_available", "gpu_plan"]

logger = logging.getLogger(__name__)

#: GPU memory CatBoost needs besides its quantized features (histograms,
#: gradients, its CUDA context): a generous 1 GiB.
GPU_FLOOR_BYTES = 1 << 30


def catboost_gpu_available() -> bool:
    """Whether CatBoost can train on a GPU of this machine, now."""
    import torch

    # without a CUDA device, don't ask CatBoost: on machines with the CUDA
    # runtime but no driver its probe prints an error line to stderr
    if not torch.cuda.is_available():
        return False
    try:
        from catboost.utils import get_gpu_device_count

        return bool(get_gpu_device_count() > 0)
    except Exception:  # CPU-only catboost builds, missing drivers
        return False


def gpu_plan(
    free_bytes: Sequence[int], n_rows: int | None, n_features: int | None
) -> tuple[str, str | None, str]:
    """Where CatBoost trains: ``(task_type, devices, why)``.

    A pure function of the free memory of each GPU (after PyTorch's cached
    blocks are released) and the shape of the features. CatBoost takes 95%
    of the *free* memory of each GPU it uses when it starts (``gpu_ram_part``
    of ``cudaMemGetInfo``) and stores one byte per quantized feature value;
    the GPUs with that plus :data:`GPU_FLOOR_BYTES` free are used, else the CPU.

    Examples
    --------
    >>> gib = 2**30  # two T4s (15 GiB) holding a Gemma-2-9b 4-bit replica each
    >>> gpu_plan([8 * gib, 8 * gib], 57_000, 3584)[:2]
    ('GPU', '0:1')
    >>> gpu_plan([int(0.5 * gib)], 57_000, 3584)[0]
    'CPU'
    """
    if not free_bytes:
        return "CPU", None, "no GPU"
    need = GPU_FLOOR_BYTES + (n_rows or 0) * (n_features or 0)
    usable = [i for i, free in enumerate(free_bytes) if free >= need]
    if not usable:
        most = max(free_bytes) / 2**30
        return (
            "CPU",
            None,
            f"{most:.1f} GiB free on the best GPU, {need / 2**30:.1f} GiB needed",
        )
    return "GPU", ":".join(map(str, usable)), f"{need / 2**30:.1f} GiB needed per GPU"


def _free_gpu_bytes() -> list[int]:
    """Free memory of each visible GPU, after releasing PyTorch's cached
    blocks (memory the embedder's replicas do not hold, which CatBoost could
    not otherwise use)."""
    import torch

    torch.cuda.empty_cache()
    return [int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())]


def _shape(X: Any) -> tuple[int | None, int | None]:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if hasattr(X, "num_row") and hasattr(X, "num_col"):  # a catboost.Pool
        return int(X.num_row()), int(X.num_col())
    return None, None


class AutoDeviceCatBoostClassifier(CatBoostClassifier):
    """``CatBoostClassifier`` that trains on a GPU when the fitting machine has one.

    Without a ``task_type`` parameter, each ``fit`` asks whether this machine
    (not the one that built the estimator) has a GPU CatBoost can use, and
    trains with ``task_type="GPU"`` if so, else ``"CPU"``. The choice is not
    kept as a parameter: a pipeline built or pickled on one machine and
    fitted on another uses the device of the second. ``get_all_params()``
    after ``fit`` tells which one was used. An explicit ``task_type`` is
    used as given. Everything else is CatBoost's: the fitted model predicts
    on any machine, ``save_model`` writes CatBoost's own format.

    In the seed recipe the embedder's replicas stay on the GPUs while CatBoost
    trains (freeing them would reload the checkpoint at the next
    ``predict_proba``, every fold of a cross-validation). CatBoost sizes its
    memory pool from the free memory of each GPU, so before it starts,
    PyTorch's cached blocks are released and only the GPUs with room for the
    quantized features (:func:`gpu_plan`) are used; with none, the CPU. An
    explicit ``devices`` is used as given.
    """

    def fit(self, X: Any, y: Any = None, **kwargs: Any) -> AutoDeviceCatBoostClassifier:
        if self.get_param("task_type") is not None:
            return super().fit(X, y, **kwargs)
        # CatBoost's set_params refuses a fitted model, and a refit must decide
        # again: set the device in the parameters for this fit only.
        chosen = {"task_type": "CPU"}
        if catboost_gpu_available():
            task_type, devices, why = gpu_plan(_free_gpu_bytes(), *_shape(X))
            logger.info("CatBoost trains on %s (GPUs %s; %s)", task_type, devices, why)
            chosen["task_type"] = task_type
            if devices is not None and self.get_param("devices") is None:
                chosen["devices"] = devices
        self._init_params.update(chosen)
        self._canonized_params = None
        try:
            return super().fit(X, y, **kwargs)
        finally:
            for name in chosen:
                self._init_params.pop(name, None)
            self._canonized_params = None
