# SPDX-License-Identifier: Apache-2.0
"""``--engine ray``: ``embed`` and ``predict`` on a pool of Ray actors, read from
CSV or Parquet and written as Parquet shards plus ``_SUCCESS``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.schema import WINNER_COLUMNS
from ._common import say, summary_line
from ._outputs import ray_output
from ._params import embedder_from_flags, override_model_params


def _ray_rows(args: argparse.Namespace, path: str | None) -> tuple[Any, str]:
    """Arena rows as a Ray Dataset, read by ``--format`` and ``--cell-format``:
    a CSV or Parquet file or directory, or the sample."""
    import gemma_pref as gp
    from gemma_pref import distributed

    if path is None:
        import ray

        df = gp.load_arena_sample().drop(columns=list(WINNER_COLUMNS))
        # blocks are what the actors share out: one DataFrame is one block
        rows = distributed.read_preferences_dataset(
            ray.data.from_pandas(df).repartition(8), format="lmsys"
        )
        return rows, "bundled arena sample (715 rows of the Kaggle train.csv)"
    rows = distributed.read_arena_dataset(path, format=args.format, cell_format=args.cell_format)
    return rows, path


def _on_ray(args: argparse.Namespace, what: str, out: Path, build: Callable[[Any], Any]) -> int:
    """Connect, build the lazy job from the rows, write it atomically, report."""
    from gemma_pref import distributed

    distributed.connect(args.ray_address)
    rows, source = _ray_rows(args, getattr(args, "input", None) or getattr(args, "test", None))
    say(f"{what} on Ray: rows from {source}")
    start = time.perf_counter()
    written = distributed.write_parquet(build(rows), out, overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    summary_line(
        what,
        written["rows"],
        seconds,
        f"; wrote {len(written['files'])} Parquet shard(s) and {distributed.SUCCESS_FILE} to {out}",
    )
    return 0


def embed_on_ray(args: argparse.Namespace, formatter: Any) -> int:
    from gemma_pref import distributed

    out = ray_output(args.output or "embeddings", args.overwrite, args)
    embedder = embedder_from_flags(args)
    return _on_ray(
        args,
        "embed",
        out,
        lambda rows: distributed.embed_dataset(
            rows,
            embedder,
            formatter=formatter,
            num_replicas=args.replicas,
            num_cpus_per_replica=args.cpus_per_replica,
        ),
    )


def predict_on_ray(args: argparse.Namespace, pipeline_path: Path) -> int:
    import gemma_pref as gp
    from gemma_pref import distributed

    out = ray_output(args.output or "predictions", args.overwrite, args)

    def build(rows: Any) -> Any:  # once the first rows are read and checked
        pipe = gp.load(pipeline_path)  # warns when saved by other versions
        override_model_params(args, pipe)  # each actor then maps devices onto its own GPUs
        return distributed.predict_dataset(
            rows, pipe, num_replicas=args.replicas, num_cpus_per_replica=args.cpus_per_replica
        )

    return _on_ray(args, "predict", out, build)
