"""The preference pipeline rebuilt by hand: LogisticRegression instead of CatBoost,
and structure features joined to the embeddings with a FeatureUnion.

Every piece is a plain scikit-learn estimator, so the whole model is one object
that ``cross_val_score``, ``GridSearchCV`` and ``joblib`` understand. The
:class:`~gemma_pref.SwapABClassifier` around it trains on both answer orders and
averages its predictions over both.

Run (the default model needs ``pip install "gemma-pref[demo]"``)::

    python examples/custom_pipeline.py
    python examples/custom_pipeline.py --model /models/gemma-2-9b --max-length 1024
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

import gemma_pref as gp


def build(model: str | None, max_length: int, C: float) -> gp.SwapABClassifier:
    features = FeatureUnion(
        [
            (
                "embedding",
                make_pipeline(
                    gp.ArenaTextFormatter(),
                    gp.GemmaEmbedder(model, max_length=max_length),
                ),
            ),
            ("structure", gp.ArenaStructureFeatures()),
        ]
    )
    pipe = make_pipeline(features, StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return gp.SwapABClassifier(pipe)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint dir (default: Gemma 3 270M)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--C", type=float, default=0.01, help="inverse L2 strength")
    args = parser.parse_args(argv)

    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    model = build(args.model, args.max_length, args.C)

    cv = gp.PromptGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    scores = -cross_val_score(model, df, y, cv=cv, scoring="neg_log_loss")
    print(f"log loss {scores.mean():.4f} +/- {scores.std():.4f} over {args.folds} folds")

    model.fit(df, y)
    names = model.estimator_[0].get_feature_names_out()
    print(f"{len(names)} features, e.g. {names[0]}, {names[-1]}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "custom.joblib"
        joblib.dump(model, path)
        restored = joblib.load(path)
        same = np.allclose(restored.predict_proba(df.head(5)), model.predict_proba(df.head(5)))
        print(f"saved {path.stat().st_size / 1e3:.0f} kB; reloaded predictions match: {same}")
    return {"log_loss": float(scores.mean()), "n_features": len(names)}


if __name__ == "__main__":
    main()
