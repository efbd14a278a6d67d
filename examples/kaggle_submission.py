"""The reference Kaggle notebook as a script: train.csv + test.csv -> submission.csv.

Format each row with the Gemma chat template, embed it with Gemma-2-9b (4-bit NF4,
mean of the last hidden state over real tokens, 1024 tokens, one replica per GPU),
train CatBoost (MultiClass, on the GPU when there is one) on the embeddings, and
write the submission. The defaults are those of a Kaggle 2xT4 notebook::

    !pip install --no-index --find-links /kaggle/input/gemma-pref-wheels gemma-pref
    !python kaggle_submission.py \
        --train /kaggle/input/lmsys-chatbot-arena/train.csv \
        --test /kaggle/input/lmsys-chatbot-arena/test.csv \
        --sample-submission /kaggle/input/lmsys-chatbot-arena/sample_submission.csv \
        --model /kaggle/input/gemma-2-9b-hf

Budget on 2xT4 (see docs/kaggle.md): Gemma-2-9b in 4-bit takes about 6 GB per GPU;
57k training rows at 1024 tokens are the long step. ``--cache-dir`` keeps the
embeddings, so a second run (another classifier, another seed) skips it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

import gemma_pref as gp


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="Kaggle train.csv")
    parser.add_argument("--test", required=True, help="Kaggle test.csv")
    parser.add_argument("--sample-submission", required=True, help="sample_submission.csv")
    parser.add_argument("--model", default="/kaggle/input/gemma-2-9b-hf")
    parser.add_argument("--output", default="submission.csv")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--devices", default="cuda:0,cuda:1", help="comma list, one model replica per device"
    )
    parser.add_argument("--quantization", default="4bit", choices=["4bit", "8bit", "none"])
    parser.add_argument("--iterations", type=int, default=1000, help="CatBoost iterations")
    parser.add_argument(
        "--recipe",
        default="seed",
        choices=["seed", "pairwise"],
        help="seed: the notebook (one text per row, CatBoost); pairwise: "
        "one text per answer, the library's default (twice the rows "
        "to embed)",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="share of train.csv held out for a log-loss estimate",
    )
    parser.add_argument("--cache-dir", default=None, help="on-disk embedding cache")
    args = parser.parse_args(argv)

    train = gp.load_arena_csv(args.train, require_labels=True)
    test = gp.load_arena_csv(args.test)
    sample = pd.read_csv(args.sample_submission)
    y = gp.data.labels_from_winner(train)

    pipe = gp.make_preference_pipeline(
        args.model,
        max_length=args.max_length,
        batch_size=args.batch_size,
        devices=args.devices.split(","),
        quantization=None if args.quantization == "none" else args.quantization,
        cache_dir=args.cache_dir,
        show_progress_bar=True,
        recipe=args.recipe,
        classifier=(
            gp.pipeline.make_catboost_classifier(iterations=args.iterations)
            if args.recipe == "seed"
            else None
        ),
    )

    start = time.perf_counter()
    if args.holdout > 0:
        fit_idx, hold_idx = train_test_split(
            np.arange(len(train)), test_size=args.holdout, random_state=42, stratify=y
        )
        pipe.fit(train.iloc[fit_idx], y[fit_idx])
        proba = pipe.predict_proba(train.iloc[hold_idx])
        print(
            f"holdout log loss {log_loss(y[hold_idx], proba, labels=[0, 1, 2]):.4f}, "
            f"accuracy {accuracy_score(y[hold_idx], proba.argmax(axis=1)):.3f}"
        )
    else:
        pipe.fit(train, y)
    print(f"trained on {len(train)} rows in {time.perf_counter() - start:.0f} s")

    proba = pipe.predict_proba(test)
    by_id = pd.DataFrame(proba, columns=list(gp.data.WINNER_COLUMNS))
    by_id.insert(0, "id", test["id"].to_numpy())
    ordered = sample[["id"]].merge(by_id, on="id", how="left")
    if ordered.isna().any().any():
        missing = ordered.loc[ordered.isna().any(axis=1), "id"].tolist()[:5]
        raise ValueError(f"sample submission ids missing from test.csv: {missing}")
    gp.write_submission(ordered["id"], ordered[list(gp.data.WINNER_COLUMNS)], args.output)
    print(f"wrote {args.output} ({len(ordered)} rows)")
    return ordered


if __name__ == "__main__":
    main()
