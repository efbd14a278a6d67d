# SPDX-License-Identifier: Apache-2.0
"""The configurations that ``benchmarks/quality.py`` measures: a registry of
unfitted estimators whose input is the raw arena DataFrame (``CONFIGS``,
``BY_NAME``), the settings they share (:class:`Context`) and the length model
(:class:`LengthFeatures`) some of them use. The runner
(``benchmarks/quality.py``) cross-validates them and writes the reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Inverse regularisation of every LogisticRegression with a fixed C. Chosen
#: before any result was seen: standardised features (55 structure features,
#: 640 embedding dimensions) against ~570 training rows of a noisy 3-class
#: target call for strong L2 shrinkage; 0.01 is also the value of the
#: SwapABClassifier docstring example. The CLI's ``--C`` default (1.0) is
#: measured separately (``emb-lr-C1``).
C_A_PRIORI = 0.01

#: Grid of the nested cross-validation of C (``*-cv`` configurations).
C_GRID = [float(c) for c in np.logspace(-4, 0, 9)]

#: A faster CatBoost, fixed a priori: 300 iterations at learning rate 0.1 keep
#: the seed's iterations x learning rate (1000 x 0.03 = 30).
FAST_CATBOOST = {"iterations": 300, "learning_rate": 0.1}

#: The baseline every configuration is compared with: the structure model alone
#: (``recipe="structure"``), the best model without a language model.
BASELINE = "structure"

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- configurations
@dataclass
class Context:
    """Settings shared by the configuration builders."""

    model: str | None
    model_dir: Path
    max_length: int
    cache_dir: str
    #: the hidden state of the configurations that do not name one
    layer: Any = -1
    #: GemmaEmbedder parameters of the run (--dtype, --backend, --quantization)
    embedder: dict[str, Any] = field(default_factory=dict)

    def embedder_params(self, layer: Any = None) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "cache_dir": self.cache_dir,
            "layer": self.layer if layer is None else layer,
            **self.embedder,
        }


@dataclass
class Config:
    """One measured configuration."""

    name: str
    description: str
    build: Callable[[Context], Any]
    #: text sets whose embeddings it needs: "plain", "plain-swapped",
    #: "budget", "budget-swapped"
    texts: tuple[str, ...] = ()
    tags: list[str] = field(default_factory=list)
    #: the embedder's hidden state (None: the run's --layer)
    layer: Any = None


def _logreg(C: float = C_A_PRIORI) -> Any:
    from gemma_pref.models import make_logreg_classifier

    return make_logreg_classifier(C)


def _logreg_cv() -> Any:
    """StandardScaler + LogisticRegressionCV: C chosen inside each fit.

    A self-contained estimator (no wrapper around the pipeline), as a library
    default would be. Its inner 5-fold CV is stratified but not grouped by
    prompt (it sees features, not rows); with ``SwapABClassifier(augment=True)``
    a row and its swapped twin can fall on both sides of an inner split. (The
    library's ``make_logreg_classifier()`` now searches C on prompt-grouped
    folds; this configuration keeps the estimator that was measured.)
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    search = LogisticRegressionCV(
        Cs=list(C_GRID),
        cv=5,
        scoring="neg_log_loss",
        max_iter=5000,
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
    )
    return make_pipeline(StandardScaler(), search)


def text_formatter(ctx: Context, budget: bool, layout: str = "joint") -> Any:
    import gemma_pref as gp

    if budget:
        # both answers survive truncation: each part cut to its share of max_length
        return gp.ArenaTextFormatter(
            layout=layout, max_tokens=ctx.max_length, tokenizer=str(ctx.model_dir)
        )
    return gp.ArenaTextFormatter(layout=layout)


def _pairwise(ctx: Context, budget: bool = False, classifier: Any = None, layer: Any = None) -> Any:
    """The embedding recipe (the default before the blend), as the library builds it."""
    import gemma_pref as gp

    return gp.make_preference_pipeline(
        ctx.model,
        recipe="embedding",
        formatter=text_formatter(ctx, budget, layout="pair") if budget else None,
        classifier=classifier,
        **ctx.embedder_params(layer),
    )


def _embedding_pipeline(ctx: Context, classifier: Any, budget: bool = False) -> Any:
    """formatter -> embedder -> classifier, the seed recipe as the library builds it."""
    import gemma_pref as gp

    return gp.make_preference_pipeline(
        ctx.model,
        recipe="seed",  # one text per row; classifier None: the seed's CatBoost
        classifier=classifier,
        formatter=text_formatter(ctx, budget),
        **ctx.embedder_params(),
    )


def _union_pipeline(ctx: Context, classifier: Any, budget: bool = False) -> Any:
    """FeatureUnion(formatter -> embedder, structure features) -> classifier."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    import gemma_pref as gp

    text = Pipeline(
        [
            ("formatter", text_formatter(ctx, budget)),
            ("embedder", gp.GemmaEmbedder(ctx.model, **ctx.embedder_params())),
        ]
    )
    features = FeatureUnion([("text", text), ("structure", gp.ArenaStructureFeatures())])
    return Pipeline([("features", features), ("classifier", classifier)])


def _struct_pipeline(classifier: Any) -> Any:
    from sklearn.pipeline import Pipeline

    import gemma_pref as gp

    return Pipeline([("structure", gp.ArenaStructureFeatures()), ("classifier", classifier)])


def _swap(estimator: Any, augment: bool = True, tta: bool = True) -> Any:
    import gemma_pref as gp

    return gp.SwapABClassifier(estimator, augment=augment, tta=tta)


def _nested_c(estimator: Any) -> Any:
    """Choose LogisticRegression's C by grouped CV inside the training rows."""
    from sklearn.model_selection import GridSearchCV

    import gemma_pref as gp

    keys = [k for k in estimator.get_params(deep=True) if k.endswith("logisticregression__C")]
    if len(keys) != 1:  # pragma: no cover - a bug of this script
        raise RuntimeError(f"expected one LogisticRegression C, found {keys}")
    return GridSearchCV(
        estimator,
        {keys[0]: C_GRID},
        scoring="neg_log_loss",
        cv=gp.PromptGroupKFold(n_splits=5, shuffle=True, random_state=1),
        refit=True,
        error_score="raise",
    )


def _catboost(**params: Any) -> Any:
    import gemma_pref as gp

    return gp.pipeline.make_catboost_classifier(**params)


def _pair_classifier(estimator: Any) -> Any:
    import gemma_pref as gp

    return gp.PairDifferenceClassifier(estimator)


class LengthFeatures:
    """The length model of the issue that asked for the blend, written out apart
    from the library's features: for the chars, words and lines of each answer,
    ``log(1 + count)`` of each, their difference and its absolute value, and the
    signed log of the counts' difference; the prompt's turns and log length and
    an identical-answers flag (the library's prompt columns)."""

    KEEP = ("chars", "words", "lines")

    def __init__(self) -> None:
        pass

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> LengthFeatures:
        return self

    def fit(self, X: Any, y: Any = None) -> LengthFeatures:
        return self

    def transform(self, X: Any) -> np.ndarray:
        from gemma_pref.text.features import (
            PROMPT_FEATURES,
            RESPONSE_FEATURES,
            ArenaStructureFeatures,
        )

        names = list(ArenaStructureFeatures().get_feature_names_out())
        F = ArenaStructureFeatures().transform(X)
        la = F[:, [names.index(f"response_a_{k}") for k in self.KEEP]]
        lb = F[:, [names.index(f"response_b_{k}") for k in self.KEEP]]
        raw = np.expm1(la) - np.expm1(lb)
        assert len(PROMPT_FEATURES) == 4 and set(self.KEEP) <= set(RESPONSE_FEATURES)
        return np.hstack(
            [F[:, :4], la, lb, la - lb, np.abs(la - lb), np.sign(raw) * np.log1p(np.abs(raw))]
        )

    def swap_map(self) -> tuple[np.ndarray, np.ndarray]:
        k = len(self.KEEP)
        index, sign = np.arange(4 + 5 * k), np.ones(4 + 5 * k)
        a = np.arange(4, 4 + k)
        index[a], index[a + k] = a + k, a
        sign[4 + 2 * k : 4 + 3 * k] = sign[4 + 4 * k :] = -1.0
        return index, sign


def _blend_structure(structure: Any = "auto") -> Any:
    import gemma_pref as gp

    return gp.PreferenceBlendClassifier(structure=structure)


def _blend(ctx: Context, layer: Any = None, **params: Any) -> Any:
    """The default recipe's model: PreferenceBlendClassifier with a GemmaEmbedder
    (the pair texts without a token budget unless ``formatter`` is given)."""
    import gemma_pref as gp

    embedder = gp.GemmaEmbedder(ctx.model, **ctx.embedder_params(layer))
    return gp.PreferenceBlendClassifier(embedder, **params)


def _prior(ctx: Context) -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")


P, S = ("plain",), ("plain", "plain-swapped")
B, BS = ("budget",), ("budget", "budget-swapped")
TEXT_SETS = ("plain", "plain-swapped", "budget", "budget-swapped", "pair", "pair-budget")

#: Hidden states compared (Gemma 3 270M has 18 decoder layers; -1 is the last,
#: after the final norm; 0.5 is the middle, layer 9).
LAYERS: dict[str, Any] = {
    "L2-4": range(2, 5),
    "L4": 4,
    "L6": 6,
    "L9": 9,
    "L12": 12,
    "L8-12": range(8, 13),
    "last": -1,
}


def _layer_configs() -> list[Config]:
    out = []
    for tag, layer in LAYERS.items():
        out += [
            Config(
                f"pair-lr-{tag}",
                f"recipe='embedding' (pair texts + PairDifferenceClassifier) at layer={layer!r}",
                lambda ctx, layer=layer: _pairwise(ctx, layer=layer),
                ("pair",),
                layer=layer,
            ),
            Config(
                f"blend-{tag}",
                "the default recipe's model without its token budget: "
                f"PreferenceBlendClassifier(GemmaEmbedder(layer={layer!r})): structure "
                "model + pair-embedding model, each C and the product-of-experts exponents "
                "chosen by prompt-grouped 5-fold CV inside fit; each pair text cut at "
                "max_length",
                lambda ctx, layer=layer: _blend(ctx, layer),
                ("pair",),
                layer=layer,
            ),
        ]
        out.append(
            Config(
                f"pairemb-{tag}",
                f"PreferenceBlendClassifier(GemmaEmbedder(layer={layer!r}), structure='drop'): "
                "the embedding model alone, C by prompt-grouped CV (the blend's own)",
                lambda ctx, layer=layer: _blend(ctx, layer, structure="drop"),
                ("pair",),
                layer=layer,
            )
        )
    for tag in ("L2-4", "L4", "L6", "L9", "L8-12"):
        out.append(
            Config(
                f"blend-budget-{tag}",
                f"blend-{tag} with ArenaTextFormatter(layout='pair', max_tokens=max_length, "
                "tokenizer=model): the prompt and the answer each keep their share of "
                "max_length, so the answer survives a long prompt (the default recipe's "
                "formatting)",
                lambda ctx, layer=LAYERS[tag]: _blend(
                    ctx, layer, formatter=text_formatter(ctx, True, layout="pair")
                ),
                ("pair-budget",),
                layer=LAYERS[tag],
            )
        )
        out.append(
            Config(
                f"blend-budget-cosine-{tag}",
                f"blend-budget-{tag} with tie_features='cosine' in the embedding model",
                lambda ctx, layer=LAYERS[tag]: _blend(
                    ctx,
                    layer,
                    formatter=text_formatter(ctx, True, layout="pair"),
                    tie_features="cosine",
                ),
                ("pair-budget",),
                layer=LAYERS[tag],
            )
        )
        for ties in ("abs", "cosine"):
            out.append(
                Config(
                    f"blend-{ties}-{tag}",
                    f"blend-{tag} with tie_features={ties!r} in the embedding model",
                    lambda ctx, layer=LAYERS[tag], ties=ties: _blend(ctx, layer, tie_features=ties),
                    ("pair",),
                    layer=LAYERS[tag],
                )
            )
    return out


CONFIGS: list[Config] = [
    # -- the blend (the library's default) and the layers
    *_layer_configs(),
    Config(
        "structure",
        "recipe='structure': PreferenceBlendClassifier() (log-scaled structure "
        "features, swap-symmetric logistic regression, C by prompt-grouped CV)",
        lambda ctx: _blend_structure(),
    ),
    Config(
        "length-lr",
        "the length model: LengthFeatures (chars, words, lines of each answer, "
        "log-scaled, differences, |differences|, signed log count differences, "
        "prompt, identical) in the same symmetric logistic regression",
        lambda ctx: _blend_structure(LengthFeatures()),
    ),
    # -- the embedding recipe (the default before the blend)
    Config(
        "pair-lr",
        "recipe='embedding' at the run's layer: ArenaTextFormatter(layout='pair') + "
        "embedder + PairDifferenceClassifier() (StandardScaler + LogisticRegression "
        "on e(A) - e(B), both signs, C chosen inside fit by a grid search whose "
        "folds each fit their own scaler)",
        lambda ctx: _pairwise(ctx),
        ("pair",),
    ),
    Config(
        "pair-budget-lr",
        "pair-lr with ArenaTextFormatter(layout='pair', max_tokens=max_length, "
        "tokenizer=model): each answer survives a long prompt",
        lambda ctx: _pairwise(ctx, budget=True),
        ("pair-budget",),
    ),
    Config(
        "pair-cbfast",
        "pair texts + PairDifferenceClassifier(CatBoost(iterations=300, learning_rate=0.1))",
        lambda ctx: _pairwise(ctx, classifier=_pair_classifier(_catboost(**FAST_CATBOOST))),
        ("pair",),
    ),
    # -- baselines without embeddings
    Config("prior", "class prior (DummyClassifier(strategy='prior'))", _prior),
    Config(
        "struct-lr",
        f"structure features + StandardScaler + LogisticRegression(C={C_A_PRIORI})",
        lambda ctx: _struct_pipeline(_logreg()),
    ),
    Config(
        "struct-lr-cv",
        "structure features + StandardScaler + LogisticRegression, C by nested CV",
        lambda ctx: _nested_c(_struct_pipeline(_logreg())),
    ),
    Config(
        "struct-lr-aug-tta",
        f"struct-lr (C={C_A_PRIORI}) in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_struct_pipeline(_logreg())),
    ),
    Config(
        "struct-lr-aug-tta-cv",
        "struct-lr in SwapABClassifier(augment=True, tta=True), C by nested CV",
        lambda ctx: _nested_c(_swap(_struct_pipeline(_logreg()))),
    ),
    Config(
        "struct-cb",
        "structure features + CatBoost (seed settings: lr 0.03, 1000 iterations)",
        lambda ctx: _struct_pipeline(_catboost()),
    ),
    # -- embeddings + LogisticRegression
    Config(
        "emb-lr",
        f"embeddings + StandardScaler + LogisticRegression(C={C_A_PRIORI})",
        lambda ctx: _embedding_pipeline(ctx, _logreg()),
        P,
    ),
    Config(
        "emb-lr-C1",
        "embeddings + StandardScaler + LogisticRegression(C=1.0) (the CLI's --C default)",
        lambda ctx: _embedding_pipeline(ctx, _logreg(1.0)),
        P,
    ),
    Config(
        "emb-lr-cv",
        "embeddings + StandardScaler + LogisticRegression, C by nested CV",
        lambda ctx: _nested_c(_embedding_pipeline(ctx, _logreg())),
        P,
    ),
    Config(
        "emb-lr-aug-tta",
        f"emb-lr (C={C_A_PRIORI}) in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_embedding_pipeline(ctx, _logreg())),
        S,
    ),
    Config(
        "emb-lr-aug-tta-cv",
        "emb-lr in SwapABClassifier(augment=True, tta=True), C by nested CV",
        lambda ctx: _nested_c(_swap(_embedding_pipeline(ctx, _logreg()))),
        S,
    ),
    Config(
        "emb+struct-lr",
        f"FeatureUnion(embeddings, structure) + StandardScaler + "
        f"LogisticRegression(C={C_A_PRIORI})",
        lambda ctx: _union_pipeline(ctx, _logreg()),
        P,
    ),
    Config(
        "emb+struct-lr-cv",
        "FeatureUnion(embeddings, structure) + StandardScaler + LogisticRegression, C by nested CV",
        lambda ctx: _nested_c(_union_pipeline(ctx, _logreg())),
        P,
    ),
    Config(
        "emb+struct-lr-aug-tta",
        f"emb+struct-lr (C={C_A_PRIORI}) in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _logreg())),
        S,
    ),
    Config(
        "emb+struct-lr-aug-tta-cv",
        "emb+struct-lr in SwapABClassifier(augment=True, tta=True), C by nested CV",
        lambda ctx: _nested_c(_swap(_union_pipeline(ctx, _logreg()))),
        S,
    ),
    # -- LogisticRegressionCV: C chosen inside the estimator (a possible default)
    Config(
        "struct-lrcv",
        "structure features + StandardScaler + LogisticRegressionCV(Cs=C_GRID, cv=5)",
        lambda ctx: _struct_pipeline(_logreg_cv()),
    ),
    Config(
        "struct-lrcv-aug-tta",
        "struct-lrcv in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_struct_pipeline(_logreg_cv())),
    ),
    Config(
        "emb-lrcv",
        "embeddings + StandardScaler + LogisticRegressionCV(Cs=C_GRID, cv=5)",
        lambda ctx: _embedding_pipeline(ctx, _logreg_cv()),
        P,
    ),
    Config(
        "emb+struct-lrcv",
        "FeatureUnion(embeddings, structure) + StandardScaler + "
        "LogisticRegressionCV(Cs=C_GRID, cv=5)",
        lambda ctx: _union_pipeline(ctx, _logreg_cv()),
        P,
    ),
    Config(
        "emb+struct-lrcv-tta",
        "emb+struct-lrcv in SwapABClassifier(augment=False, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _logreg_cv()), augment=False),
        S,
    ),
    Config(
        "emb+struct-lrcv-aug-tta",
        "emb+struct-lrcv in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _logreg_cv())),
        S,
    ),
    # -- embeddings + CatBoost
    Config(
        "emb-cb",
        "seed recipe: make_preference_pipeline(recipe='seed') (CatBoost MultiClass, lr 0.03, "
        "1000 iterations)",
        lambda ctx: _embedding_pipeline(ctx, None),
        P,
    ),
    Config(
        "emb-cb-tta",
        "emb-cb in SwapABClassifier(augment=False, tta=True)",
        lambda ctx: _swap(_embedding_pipeline(ctx, None), augment=False),
        S,
    ),
    Config(
        "emb-cb-aug-tta",
        "emb-cb in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_embedding_pipeline(ctx, None)),
        S,
    ),
    Config(
        "emb+struct-cb",
        "FeatureUnion(embeddings, structure) + CatBoost (seed settings)",
        lambda ctx: _union_pipeline(ctx, _catboost()),
        P,
    ),
    Config(
        "emb+struct-cb-tta",
        "emb+struct-cb in SwapABClassifier(augment=False, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _catboost()), augment=False),
        S,
    ),
    Config(
        "emb+struct-cb-aug-tta",
        "emb+struct-cb in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _catboost())),
        S,
    ),
    # -- a faster CatBoost (fixed a priori)
    Config(
        "emb-cbfast",
        "embeddings + CatBoost(iterations=300, learning_rate=0.1)",
        lambda ctx: _embedding_pipeline(ctx, _catboost(**FAST_CATBOOST)),
        P,
    ),
    Config(
        "emb+struct-cbfast-aug-tta",
        "FeatureUnion(embeddings, structure) + CatBoost(iterations=300, "
        "learning_rate=0.1) in SwapABClassifier(augment=True, tta=True)",
        lambda ctx: _swap(_union_pipeline(ctx, _catboost(**FAST_CATBOOST))),
        S,
    ),
    # -- token-budget formatter: both answers survive truncation
    Config(
        "budget-emb-lr-cv",
        "emb-lr-cv with ArenaTextFormatter(max_tokens=max_length, tokenizer=model)",
        lambda ctx: _nested_c(_embedding_pipeline(ctx, _logreg(), budget=True)),
        B,
    ),
    Config(
        "budget-emb+struct-lr-aug-tta-cv",
        "emb+struct-lr-aug-tta-cv with ArenaTextFormatter(max_tokens=max_length, tokenizer=model)",
        lambda ctx: _nested_c(_swap(_union_pipeline(ctx, _logreg(), budget=True))),
        BS,
    ),
    Config(
        "budget-emb+struct-cb-aug-tta",
        "emb+struct-cb-aug-tta with ArenaTextFormatter(max_tokens=max_length, tokenizer=model)",
        lambda ctx: _swap(_union_pipeline(ctx, _catboost(), budget=True)),
        BS,
    ),
]
BY_NAME = {c.name: c for c in CONFIGS}
