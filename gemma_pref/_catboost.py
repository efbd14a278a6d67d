# SPDX-License-Identifier: Apache-2.0
"""A CatBoost classifier that picks its device when it is fitted.

Imported lazily by :func:`gemma_pref.make_catboost_classifier`: importing
catboost takes a few seconds.
"""

from __future__ import annotations

from typing import Any

from catboost import CatBoostClassifier

__all__ = ["AutoDeviceCatBoostClassifier", "catboost_gpu_available"]


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
    """

    def fit(self, X: Any, y: Any = None, **kwargs: Any) -> AutoDeviceCatBoostClassifier:
        if self.get_param("task_type") is not None:
            return super().fit(X, y, **kwargs)
        # CatBoost's set_params refuses a fitted model, and a refit must decide
        # again: set the device in the parameters for this fit only.
        self._init_params["task_type"] = "GPU" if catboost_gpu_available() else "CPU"
        self._canonized_params = None
        try:
            return super().fit(X, y, **kwargs)
        finally:
            self._init_params.pop("task_type", None)
            self._canonized_params = None
