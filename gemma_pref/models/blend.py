# SPDX-License-Identifier: Apache-2.0
"""The default preference model: a structure model and an embedding model, blended.

Two models of the same arena rows err on different rows: one of the answers'
structure (lengths, lists, code, markdown; :class:`ArenaStructureFeatures`) and
one of the answers' embeddings (``e(prompt, A) - e(prompt, B)``, as in
:class:`~gemma_pref.PairDifferenceClassifier`). :class:`PreferenceBlendClassifier`
fits both, each an exactly swap-symmetric logistic regression whose ``C`` it
chooses by prompt-grouped cross-validation inside ``fit``, and combines their
probabilities as a product of experts, ``p ∝ p_structure^a * p_embedding^b``,
with the exponents chosen on the same out-of-fold predictions. This module
never imports torch: the embedder does, when it runs.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import TextInputMixin, VersionedPickleMixin, fit_context
from ..data.schema import CELL_FORMATS, check_arena_frame, check_labels, swap_labels
from ..evaluation.model_selection import PromptGroupKFold
from ..text.features import ArenaStructureFeatures
from ..text.formatting import ArenaTextFormatter
from ._symmetric import SwapMap, fit_symmetric, log_loss_of, out_of_fold, predict_symmetric

__all__ = ["BLEND_CS", "BLEND_WEIGHTS", "TIE_FEATURES", "PreferenceBlendClassifier"]

#: Inverse regularisation strengths searched for each model (log-spaced): on a
#: few thousand rows both models choose between 1e-4 and 1e-2.
BLEND_CS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: Candidate exponents of each model in the blend. Not constrained to sum to 1:
#: two models that know different things are each worth more than a share.
BLEND_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(16))
#: What the embedding model adds to ``d = e_a - e_b``: nothing, ``|d|`` or the
#: cosine similarity and distance of the two answers' vectors (swap-symmetric
#: evidence for a tie).
TIE_FEATURES: tuple[str, ...] = ("none", "abs", "cosine")


def _pair_design(E: np.ndarray, tie_features: str) -> tuple[np.ndarray, SwapMap]:
    """The embedding model's design from ``[e_a | e_b]``, and its swap map."""
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2 or E.shape[1] % 2:
        raise ValueError(
            "PreferenceBlendClassifier expects the embedder to return the two "
            "answers' vectors side by side (ArenaTextFormatter(layout='pair') "
            f"before GemmaEmbedder); got an array of shape {E.shape}."
        )
    half = E.shape[1] // 2
    a, b = E[:, :half], E[:, half:]
    d = a - b
    if tie_features == "abs":
        extra = np.abs(d)
    elif tie_features == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = np.divide((a * b).sum(axis=1), norms, out=np.ones(len(E)), where=norms > 0)
        extra = np.column_stack([cosine, np.log1p(np.linalg.norm(d, axis=1))])
    else:
        extra = np.empty((len(E), 0))
    X = np.hstack([d, extra])
    sign = np.concatenate([-np.ones(half), np.ones(extra.shape[1])])
    return X, SwapMap(np.arange(X.shape[1]), sign)


def _blend(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """``prod_m p_m^(w_m)``, normalised per row; a model of weight 0 may be absent."""
    used = [name for name, w in weights.items() if w != 0.0]
    if len(used) == 1 and weights[used[0]] == 1.0:
        return np.asarray(parts[used[0]])
    n = len(next(iter(parts.values())))
    log_p = np.zeros((n, next(iter(parts.values())).shape[1]))
    for name in used:
        log_p += weights[name] * np.log(np.clip(parts[name], 1e-15, 1.0))
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(axis=1, keepdims=True)


class PreferenceBlendClassifier(
    TextInputMixin, VersionedPickleMixin, ClassifierMixin, BaseEstimator
):
    """Blend a structure model and an embedding model of arena rows.

    A classifier of the raw arena DataFrame (columns ``prompt``,
    ``response_a``, ``response_b``). Two models, each a scaled multinomial
    logistic regression trained on every row and its A/B-swapped copy and
    averaged over both orders at prediction, so exactly symmetric under
    swapping the answers:

    - the **structure model**, on :class:`ArenaStructureFeatures` (log-scaled
      counts of each answer, their differences and absolute differences, the
      prompt's length, identical answers);
    - the **embedding model**, on ``d = e(prompt, A) - e(prompt, B)`` from
      ``embedder`` over ``ArenaTextFormatter(layout="pair")`` texts (plus
      swap-symmetric tie evidence if ``tie_features`` says so).

    ``fit`` splits the rows into ``cv`` prompt-grouped folds
    (:class:`~gemma_pref.PromptGroupKFold`), computes each model's
    out-of-fold probabilities for every ``C`` in ``Cs``, keeps each model's
    best ``C``, then chooses the exponents ``a`` and ``b`` of the product of
    experts ``p ∝ p_structure^a * p_embedding^b`` among ``weights`` (each) on
    the same out-of-fold probabilities, and finally refits both models on all
    rows. The exponents need not sum to 1: where the models know different
    things, each counts for more than a share (and ``a = b = 1`` would be a
    plain product). Each text is embedded once: the folds reuse the same
    vectors.

    Parameters
    ----------
    embedder : transformer or None, default=None
        Texts to vectors, usually :class:`~gemma_pref.GemmaEmbedder`. It
        receives the ``(n_rows, 2)`` texts of ``formatter`` and must return
        ``[e_a | e_b]``. ``None``: the structure model alone (no model is
        loaded).
    formatter : "auto" or transformer, default="auto"
        Rows to texts for ``embedder``; ``"auto"``:
        ``ArenaTextFormatter(layout="pair")``. An ``ArenaTextFormatter`` must
        have ``layout="pair"``.
    structure : "auto", "drop" or transformer, default="auto"
        Rows to structure features; ``"auto"``: ``ArenaStructureFeatures()``.
        Another transformer needs a ``swap_map()`` method as
        :meth:`ArenaStructureFeatures.swap_map`. ``"drop"``: the embedding
        model alone.
    tie_features : {"none", "abs", "cosine"}, default="none"
        What the embedding model sees besides ``d``: nothing, ``|d|``, or the
        cosine similarity of ``e_a`` and ``e_b`` with ``log(1 + ||d||)``.
    Cs : array-like of float, default=BLEND_CS
        Candidate inverse regularisation strengths of both models.
    weights : array-like of float, default=BLEND_WEIGHTS
        Candidate exponents of each model in the blend (0 to 1.5 by 0.1),
        non-negative; every pair is tried.
    cv : int, default=5
        Prompt-grouped folds of the search (fewer when a class has fewer rows).
    random_state : int or None, default=0
        Seed of the folds' shuffle.
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells of the rows are read, one rule for the frame (see
        :class:`~gemma_pref.ArenaTextFormatter`): by the ``"auto"``
        formatter and structure features, and by the prompt-grouped folds. A
        ``formatter`` or ``structure`` passed in keeps its own.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        ``[0, 1, 2]`` (model_a wins, model_b wins, tie), or ``[0, 1]`` when
        ``y`` holds no tie.
    weights_ : dict of str to float
        The chosen exponent of each model, ``{"structure": a, "embedding":
        b}`` (one model alone: its exponent is 1.0).
    C_structure_, C_embedding_ : float or None
        The chosen ``C`` of each model (``None`` for a model left out).
    cv_log_loss_ : dict of str to float
        Out-of-fold log loss of ``"structure"``, ``"embedding"`` (at their
        chosen ``C``) and ``"blend"`` (at ``weights_``), over the search's folds.
    formatter_, embedder_, structure_ : transformer or None
        The fitted clones (``None`` for a part left out).
    structure_model_, embedding_model_ : sklearn.pipeline.Pipeline or None
        ``StandardScaler`` + ``LogisticRegression`` of each model, refitted on
        all rows and their swapped copies.

    See Also
    --------
    PairDifferenceClassifier : The embedding model alone, in a ``Pipeline``.
    ArenaStructureFeatures : The structure features.
    make_preference_pipeline : Builds this classifier with a GemmaEmbedder
        (the default recipe).

    Notes
    -----
    Pickles hold the fitted logistic regressions and the embedder's settings,
    never model weights. A model whose exponent is 0 is not run at prediction.

    Examples
    --------
    >>> from gemma_pref import load_arena_sample
    >>> from gemma_pref.data import labels_from_winner
    >>> from gemma_pref.models import swap_ab
    >>> from gemma_pref.models.blend import PreferenceBlendClassifier
    >>> df = load_arena_sample()
    >>> y = labels_from_winner(df)
    >>> clf = PreferenceBlendClassifier().fit(df, y)   # structure model alone
    >>> clf.weights_, clf.C_structure_ in clf.Cs
    ({'structure': 1.0}, True)
    >>> p = clf.predict_proba(df.head(3))
    >>> bool(np.allclose(clf.predict_proba(swap_ab(df.head(3))), p[:, [1, 0, 2]]))
    True
    """

    _parameter_constraints: dict = {
        "embedder": [HasMethods(["fit", "transform"]), None],
        "formatter": [StrOptions({"auto"}), HasMethods(["fit", "transform"])],
        "structure": [StrOptions({"auto", "drop"}), HasMethods(["fit", "transform", "swap_map"])],
        "tie_features": [StrOptions(set(TIE_FEATURES))],
        "Cs": ["array-like"],
        "weights": ["array-like"],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
        "cell_format": [StrOptions(set(CELL_FORMATS))],
    }

    def __init__(
        self,
        embedder: Any = None,
        *,
        formatter: Any = "auto",
        structure: Any = "auto",
        tie_features: str = "none",
        Cs: Any = BLEND_CS,
        weights: Any = BLEND_WEIGHTS,
        cv: int = 5,
        random_state: Any = 0,
        cell_format: str = "auto",
    ) -> None:
        self.embedder = embedder
        self.formatter = formatter
        self.structure = structure
        self.tie_features = tie_features
        self.Cs = Cs
        self.weights = weights
        self.cv = cv
        self.random_state = random_state
        self.cell_format = cell_format

    # ------------------------------------------------------------- checks
    def _check_grids(self) -> tuple[list[float], np.ndarray]:
        owner = type(self).__name__
        Cs = [float(c) for c in self.Cs]
        if not Cs or min(Cs) <= 0:
            raise ValueError(
                f"The 'Cs' parameter of {owner} must be positive floats; got {self.Cs!r}."
            )
        weights = np.asarray(self.weights, dtype=np.float64).ravel()
        if weights.size == 0 or not np.all(np.isfinite(weights) & (weights >= 0)):
            raise ValueError(
                f"The 'weights' parameter of {owner} must be non-negative exponents; got "
                f"{self.weights!r}."
            )
        if self.embedder is None and self.structure == "drop":
            raise ValueError(
                f"{owner} needs at least one model: pass an embedder, or keep "
                "structure='auto' (got embedder=None and structure='drop')."
            )
        return Cs, weights

    def _folds(self, X: Any, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        labels, counts = np.unique(y, return_counts=True)
        n_splits = min(self.cv, int(counts.min()))
        if n_splits < 2:
            raise ValueError(
                f"{type(self).__name__} chooses its regularisation by prompt-grouped "
                "cross-validation and needs at least 2 rows of each class in y; got "
                f"{dict(zip(labels.tolist(), counts.tolist()))} (label: rows)."
            )
        splitter = PromptGroupKFold(
            n_splits, shuffle=True, random_state=self.random_state, cell_format=self.cell_format
        )
        return list(splitter.split(X, y))

    # ------------------------------------------------------------- designs
    def _design(self, name: str, X: Any) -> tuple[np.ndarray, SwapMap]:
        """The design matrix of model ``name`` and its swap map, from fitted parts."""
        if name == "structure":
            design = np.asarray(self.structure_.transform(X), dtype=np.float64)
            index, sign = self.structure_.swap_map()
            return design, SwapMap(np.asarray(index), np.asarray(sign, dtype=np.float64))
        return _pair_design(self.embedder_.transform(self._texts(X)), self.tie_features)

    def _texts(self, X: pd.DataFrame) -> Any:
        """The texts of rows ``X``, indexed like ``X`` (so that the embedder's
        :class:`~gemma_pref.exceptions.TruncationWarning` names the rows by their labels)."""
        texts = self.formatter_.transform(X)
        if isinstance(texts, np.ndarray) and texts.ndim == 2 and len(texts) == len(X):
            return pd.DataFrame(texts, index=X.index)  # columns 0, 1: no names to check
        return texts

    # ------------------------------------------------------------- fit
    @fit_context(prefer_skip_nested_validation=False)  # the parts validate themselves
    def fit(self, X: Any, y: Any) -> PreferenceBlendClassifier:
        """Fit both models, choose their ``C`` and the blend's exponents by grouped CV.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows: ``prompt``, ``response_a``, ``response_b``.
        y : array-like of shape (n_rows,)
            0 (model_a wins), 1 (model_b wins), 2 (tie).

        Returns
        -------
        self : PreferenceBlendClassifier
            The fitted classifier.
        """
        owner = type(self).__name__
        Cs, weights = self._check_grids()
        X = check_arena_frame(X, owner)
        if y is None:
            raise ValueError(f"{owner} requires y to be passed, but the target y is None.")
        y = check_labels(y)
        if len(y) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)} labels; expected one label per row."
            )
        classes = np.unique(np.concatenate([y, swap_labels(y)]))
        if len(classes) < 2:
            raise ValueError(
                f"{owner} needs at least two classes in y and its swapped labels; got "
                f"only {int(classes[0])} (2 = tie)."
            )
        folds = self._folds(X, y)

        designs: dict[str, tuple[np.ndarray, SwapMap]] = {}
        self.structure_: Any = None
        if self.structure != "drop":
            structure = (
                ArenaStructureFeatures(cell_format=self.cell_format)
                if self.structure == "auto"
                else self.structure
            )
            self.structure_ = clone(structure).fit(X)
            designs["structure"] = self._design("structure", X)
        self.formatter_: Any = None
        self.embedder_: Any = None
        if self.embedder is not None:
            formatter = (
                ArenaTextFormatter(layout="pair", cell_format=self.cell_format)
                if self.formatter == "auto"
                else self.formatter
            )
            if isinstance(formatter, ArenaTextFormatter) and formatter.layout != "pair":
                raise ValueError(
                    f"{owner} embeds one text per answer and needs "
                    "ArenaTextFormatter(layout='pair'); got a formatter with "
                    f"layout={formatter.layout!r}."
                )
            self.formatter_ = clone(formatter).fit(X)
            texts = self._texts(X)
            self.embedder_ = clone(self.embedder).fit(texts)
            designs["embedding"] = _pair_design(self.embedder_.transform(texts), self.tie_features)

        chosen: dict[str, float] = {}
        oof: dict[str, np.ndarray] = {}
        scores: dict[str, float] = {}
        for name, (design, swap) in designs.items():
            candidates = out_of_fold(design, y, swap, Cs, folds, classes)
            losses = [log_loss_of(y, p, classes) for p in candidates]
            best = int(np.argmin(losses))
            chosen[name], oof[name], scores[name] = Cs[best], candidates[best], losses[best]
        if len(designs) == 2:
            pairs = [
                {"structure": float(a), "embedding": float(b)} for a in weights for b in weights
            ]
            losses = [log_loss_of(y, _blend(oof, w), classes) for w in pairs]
            best = int(np.argmin(losses))
            self.weights_ = pairs[best]
            scores["blend"] = losses[best]
        else:
            self.weights_ = {next(iter(designs)): 1.0}
            scores["blend"] = next(iter(scores.values()))

        models = {
            name: fit_symmetric(design, y, swap, chosen[name])
            for name, (design, swap) in designs.items()
        }
        self.structure_model_ = models.get("structure")
        self.embedding_model_ = models.get("embedding")
        self.C_structure_ = chosen.get("structure")
        self.C_embedding_ = chosen.get("embedding")
        self.cv_log_loss_ = scores
        self.classes_ = classes
        return self

    # ------------------------------------------------------------- predict
    def _part(self, name: str, X: Any) -> Any:
        model = getattr(self, f"{name}_model_")
        if model is None:
            return None
        design, swap = self._design(name, X)
        proba = predict_symmetric(model, design, swap)
        out = np.full((len(design), len(self.classes_)), 1e-15)
        out[:, np.searchsorted(self.classes_, model.classes_)] = proba
        return out / out.sum(axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Blended probabilities of model_a wins, model_b wins, tie; swap-symmetric.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows, as for :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        X = check_arena_frame(X, type(self).__name__)
        used = [name for name, w in self.weights_.items() if w != 0.0]
        if not used:  # both exponents 0: the uniform distribution was best
            return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))
        return _blend({name: self._part(name, X) for name in used}, self.weights_)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable label of each row.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows, as for :meth:`fit`.

        Returns
        -------
        y_pred : ndarray of shape (n_rows,)
        """
        proba = self.predict_proba(X)  # first: unfitted, it raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]
