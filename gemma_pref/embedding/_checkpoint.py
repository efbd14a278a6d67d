# SPDX-License-Identifier: Apache-2.0
"""What estimators running a checkpoint share (private to the package).

:class:`CheckpointMixin` is the base of :class:`~gemma_pref.embedding.GemmaEmbedder` and
:class:`~gemma_pref.models.GemmaPreferenceClassifier`: finding the checkpoint, loading the
replicas once per setting under one lock, ``free``, ``compute_path``, and whether to show
progress bars. It sits beside the engine (:mod:`gemma_pref.embedding._engine`) it loads, so the
estimator base below every family (:mod:`gemma_pref._base`) imports nothing of the engine.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from numbers import Integral
from pathlib import Path
from typing import Any

from sklearn.utils._param_validation import Interval, StrOptions

from ..backend._compute import BACKEND_CHOICES

__all__ = ["CHECKPOINT_CONSTRAINTS", "DTYPE_NAMES", "CheckpointMixin"]

logger = logging.getLogger(__name__)

#: The ``dtype`` strings the model estimators take (or a ``torch.dtype``).
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")

#: The parameter constraints of what every estimator running a checkpoint takes (the
#: checkpoint, how it loads and computes, on which devices), in scikit-learn's form; each
#: estimator adds its own to these.
CHECKPOINT_CONSTRAINTS: dict[str, Any] = {
    "model_name_or_path": [str, os.PathLike, None],
    "revision": [str, None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_tokens_per_batch": [Interval(Integral, 1, None, closed="left"), None],
    "devices": [str, list, tuple],
    "quantization": [StrOptions({"4bit", "8bit"}), None],
    "dtype": "no_validation",  # a str or a torch.dtype: see _check_dtype_params
    "torch_dtype": "no_validation",
    "backend": [StrOptions(set(BACKEND_CHOICES))],
    "show_progress_bar": ["boolean", None],
    "model_kwargs": [dict, None],
    "tokenizer_kwargs": [dict, None],
}

# one lock for every estimator's replicas: two threads never load the same model twice
_LOAD_LOCK = threading.Lock()


class CheckpointMixin:
    """What estimators running a local checkpoint share.

    Expects the parameters annotated below, a ``_check_params()`` that
    validates them and returns the resolved devices, and a ``_head()``. The resolved
    directory and the loaded runtime are ``_lazy_*`` state.
    """

    model_name_or_path: Any
    revision: Any
    max_length: Any
    model_kwargs: Any
    tokenizer_kwargs: Any
    show_progress_bar: Any
    backend: Any
    dtype: Any
    torch_dtype: Any  # deprecated: ``dtype``
    quantization: Any
    #: whether 8-bit weights on CPUs may run as ONNX Runtime's int8 graph
    #: (the embedder's); else they are bitsandbytes' on PyTorch
    _onnx_int8: bool = True

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickles of versions without the parameters ran PyTorch's default
        # path, on the checkpoint's default revision
        state.setdefault("backend", "auto")
        state.setdefault("revision", None)
        if "dtype" not in state:  # pickled before ``torch_dtype`` became ``dtype``
            state["dtype"] = state.get("torch_dtype") or "auto"
            state["torch_dtype"] = None
        super().__setstate__(state)  # type: ignore[misc]

    def _check_params(self) -> list[str]:
        raise NotImplementedError

    def _dtype_value(self) -> Any:
        """The compute dtype asked for: ``dtype``, or the deprecated
        ``torch_dtype`` when given (see :meth:`_check_dtype_params`)."""
        old = getattr(self, "torch_dtype", None)
        return self.dtype if old is None else old

    def _check_dtype_params(self) -> Any:
        """Validate ``dtype`` (and warn about ``torch_dtype``); return the value."""
        import warnings

        from sklearn.utils._param_validation import InvalidParameterError

        owner = type(self).__name__
        old = getattr(self, "torch_dtype", None)
        if old is not None:
            if not (isinstance(self.dtype, str) and self.dtype == "auto") and self.dtype != old:
                raise InvalidParameterError(
                    f"{owner} got dtype={self.dtype!r} and torch_dtype={old!r}; pass dtype "
                    "only (torch_dtype is its deprecated name)."
                )
            warnings.warn(
                f"The 'torch_dtype' parameter of {owner} is deprecated and will be removed; "
                f"pass dtype={old!r} instead (transformers 5 calls it dtype too).",
                FutureWarning,
                stacklevel=4,
            )
        value = self._dtype_value()
        is_dtype = type(value).__module__ == "torch" and type(value).__name__ == "dtype"
        if not is_dtype and not (isinstance(value, str) and value in DTYPE_NAMES):
            raise InvalidParameterError(
                f"The 'dtype' parameter of {owner} must be a str among "
                f"{set(DTYPE_NAMES)} or a torch.dtype. Got {value!r} instead."
            )
        return value

    def _head(self) -> Any:
        """The head the replicas compute (see :mod:`gemma_pref.embedding._engine`)."""
        raise NotImplementedError

    def _load_runtime(
        self,
        devices: list[str],
        *,
        label: str,
        progress: bool,
        extra_key: tuple = (),
        **load_kwargs: Any,
    ) -> Any:
        """The runtime for ``devices`` under the current parameters, loaded
        once per setting (``extra_key`` adds the caller's own), its choice
        of compute path logged at INFO by ``label``."""
        from ..backend import _checkpoints
        from ..backend.default_model import gemma_pref_home
        from ._engine import Runtime

        model_dir = self._model_dir()
        backend, dtype, why, quantization = self._compute(devices)
        head = self._head()
        exported = backend != "torch"
        key = (
            str(model_dir),
            _checkpoints.model_fingerprint(model_dir),  # weights re-saved in place: reload
            tuple(devices),
            str(dtype),
            backend,
            # an exported graph includes the head and is checked up to max_length
            (head, int(self.max_length)) if exported else None,
            quantization,
            repr(self.model_kwargs),
            repr(self.tokenizer_kwargs),
            *extra_key,
        )

        def load() -> Any:
            runtime = Runtime.load(
                model_dir,
                devices,
                dtype,
                quantization=quantization,
                model_kwargs=self.model_kwargs,
                tokenizer_kwargs=self.tokenizer_kwargs,
                progress=progress,
                backend=backend,
                head=head,
                export_root=gemma_pref_home() / "onnx",
                max_length=int(self.max_length),
                **load_kwargs,
            )
            logger.info("%s runs %s on %s (%s)", label, runtime.description, devices, why)
            return runtime

        return self._loaded(key, load)

    def _model_dir(self) -> Path:
        """The checkpoint directory (the default model's when the path is None;
        a Hub name's snapshot at ``revision``, downloaded once)."""
        name = None if self.model_name_or_path is None else os.fspath(self.model_name_or_path)
        key = (name, self.revision)
        cached = getattr(self, "_lazy_model_dir", None)
        if cached is None or cached[0] != key:
            if name is None:
                from ..backend.default_model import demo_model_path

                path = demo_model_path()
            else:
                from ..backend._checkpoints import resolve_model_dir

                path = resolve_model_dir(name, self.revision)
            cached = (key, path)
            self._lazy_model_dir = cached
        return cached[1]

    def _model_type(self, devices: list[str]) -> str | None:
        """The checkpoint's ``model_type`` where the dtype choice needs it (a
        CUDA device: some architectures overflow in float16), else ``None``."""
        if not any(d.startswith("cuda") for d in devices):
            return None
        from ..backend._checkpoints import model_type_of

        return model_type_of(self._model_dir())

    def _show_progress(self) -> bool:
        """``show_progress_bar``, or whether the ``gemma_pref`` logger shows INFO."""
        if self.show_progress_bar is None:
            return logging.getLogger("gemma_pref").isEnabledFor(logging.INFO)
        return bool(self.show_progress_bar)

    def _loaded(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The runtime loaded for ``key``; ``load()`` it when the key changed."""
        with _LOAD_LOCK:
            current = getattr(self, "_lazy_runtime", None)
            if current is None or current[0] != key:
                self._lazy_runtime = None  # free the old replicas first
                current = (key, load())
                self._lazy_runtime = current
        return current[1]

    def compute_path(self) -> dict[str, Any]:
        """What the forward passes run on, resolved from the parameters and
        this machine, without loading the model.

        Returns
        -------
        path : dict
            ``backend`` (``"torch"`` or ``"onnxruntime"``), ``dtype`` (the
            compute dtype's name), ``devices`` (the resolved list) and
            ``reason`` (why ``backend="auto"`` chose so, or ``"asked for"``)
            and ``quantization`` (the weights': ``"8bit"``, ``"4bit"``, or
            ``None`` for the dtype's; ``"8bit"`` where ``backend="auto"``
            chose ONNX Runtime's int8 weights on a CPU without native bf16).
        """
        from ..backend._compute import dtype_name

        devices = self._check_params()
        backend, dtype, why, quantization = self._compute(devices)
        return {
            "backend": backend,
            "dtype": dtype_name(dtype),
            "devices": devices,
            "reason": why,
            "quantization": quantization,
        }

    def _compute(self, devices: list[str]) -> tuple[str, Any, str, str | None]:
        """``(backend, dtype, why, quantization)`` of the parameters on ``devices``."""
        from ..backend._compute import resolve_compute

        path = resolve_compute(
            self.backend,
            devices,
            self._dtype_value(),
            self.quantization,
            model_type=self._model_type(devices),
            onnx_int8=self._onnx_int8,
            auto_int8=self._auto_int8(),
        )
        return path.backend, path.dtype, path.why, path.quantization

    def _auto_int8(self) -> bool:
        """Whether ``backend="auto"`` may choose int8 weights for these
        parameters on a CPU without native bf16."""
        return True

    def free(self) -> None:
        """Drop the loaded model replicas and tokenizer (reloaded on next use)."""
        with _LOAD_LOCK:
            self._lazy_runtime = None
