# SPDX-License-Identifier: Apache-2.0
"""``gemma-pref embed``: rows into a ``.npy`` matrix (or Parquet shards on Ray)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._common import CLIError, say, summary_line
from ._outputs import check_output, write_atomically
from ._params import embedder_from_flags, model_from_flags
from ._ray import embed_on_ray
from ._rows import read_rows


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gemma_pref.pipeline import make_recipe_formatter

    if args.recipe in ("finetune", "structure"):
        raise CLIError("embed writes embeddings: use --recipe pairwise, embedding or seed")
    formatter = make_recipe_formatter(
        args.recipe,
        model_from_flags(args),
        max_length=args.max_length,
        budget=args.budget,
        turns=args.turns,
        swap=args.swap,
    )
    if args.engine == "ray":
        return embed_on_ray(args, formatter)
    out = check_output(args.output or "embeddings.npy", args.overwrite, "npy", args)
    if out.suffix != ".npy":
        raise CLIError(f"output {str(out)!r} must end in .npy")
    df, source = read_rows(args, args.input, labels=False, what="input")
    texts = formatter.fit_transform(df)
    embedder = embedder_from_flags(args)
    say(f"embed: {len(df)} rows from {source}")
    start = time.perf_counter()
    X = embedder.fit_transform(texts)
    seconds = time.perf_counter() - start

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, X)

    write_atomically(out, save)
    summary_line("embed", len(df), seconds, f"; wrote {out} {X.shape} float32", embedder, formatter)
    return 0
