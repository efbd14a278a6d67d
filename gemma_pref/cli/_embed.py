# SPDX-License-Identifier: Apache-2.0
"""``gemma-pref embed``: rows into a ``.npy`` matrix (or Parquet shards on Ray)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._common import CLIError, _out, _summary
from ._outputs import _atomic, _check_output
from ._params import _embedder, _model
from ._ray import _embed_on_ray
from ._rows import _read_rows


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gemma_pref.pipeline import make_recipe_formatter

    if args.recipe in ("finetune", "structure"):
        raise CLIError("embed writes embeddings: use --recipe pairwise, embedding or seed")
    formatter = make_recipe_formatter(
        args.recipe,
        _model(args),
        max_length=args.max_length,
        budget=args.budget,
        turns=args.turns,
        swap=args.swap,
    )
    if args.engine == "ray":
        return _embed_on_ray(args, formatter)
    out = _check_output(args.output or "embeddings.npy", args.overwrite, "npy", args)
    if out.suffix != ".npy":
        raise CLIError(f"output {str(out)!r} must end in .npy")
    df, source = _read_rows(args, args.input, labels=False, what="input")
    texts = formatter.fit_transform(df)
    embedder = _embedder(args)
    _out(f"embed: {len(df)} rows from {source}")
    start = time.perf_counter()
    X = embedder.fit_transform(texts)
    seconds = time.perf_counter() - start

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, X)

    _atomic(out, save)
    _summary("embed", len(df), seconds, f"; wrote {out} {X.shape} float32", embedder, formatter)
    return 0
