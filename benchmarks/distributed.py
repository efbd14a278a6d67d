# SPDX-License-Identifier: Apache-2.0
"""Ray Data against the in-process engine: rows/s and Ray's overhead at equal cores.

On one machine, the same texts (the first ``--rows`` rows of the bundled
sample, one text per row, cut to ``--max-length`` tokens) are embedded with
the default model, float32 on CPU, no caches:

* in-process: ``GemmaEmbedder.load()`` then ``transform`` (torch threads = the
  machine's cores);
* Ray, 1 actor with every core (``num_cpus_per_replica=cores``: Ray gives the
  actor that many torch threads);
* Ray, one actor per core (``num_cpus_per_replica=1``).

Ray's job time counts everything a user waits for: actor processes starting,
torch and the model loading in each actor, the batches, and the results
coming back (``materialize``); ``ray.init`` itself (a few seconds, once per
session) is reported apart. The overhead ratio is Ray's job time over the
in-process load + transform time. ::

    python benchmarks/distributed.py                 # 256 rows, 128 tokens
    python benchmarks/distributed.py --rows 64 --max-length 64   # quick

Writes ``benchmarks/results/distributed.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import RESULTS, cpu_label, machine_info, write_report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--model", default=None, help="checkpoint (default: the default model)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="rows per Ray batch and per block: the actors work on blocks in parallel",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import numpy as np
    import pandas as pd

    import gemma_pref as gp
    from gemma_pref.distributed import connect, embed_dataset

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = int(cores or 1)
    texts = list(gp.ArenaTextFormatter().fit_transform(gp.load_arena_sample().iloc[: args.rows]))
    frame = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
    params = {
        "max_length": args.max_length,
        "dtype": "float32",
        "devices": "cpu",
        "cache_dir": None,
        "memory_cache": False,
    }

    runs = []
    embedder = gp.GemmaEmbedder(args.model, **params)
    t0 = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = embedder.transform(texts)
    embed_s = time.perf_counter() - t0
    from transformers import AutoTokenizer

    from gemma_pref.backend.default_model import demo_model_path

    tok = AutoTokenizer.from_pretrained(str(args.model or demo_model_path()))
    tokens = int(sum(min(len(ids), args.max_length) for ids in tok(texts)["input_ids"]))
    embedder.free()
    local_s = load_s + embed_s
    runs.append(
        {
            "engine": "in-process",
            "replicas": 1,
            "threads_per_replica": cores,
            "seconds": local_s,
            "load_seconds": load_s,
            "embed_seconds": embed_s,
        }
    )
    print(f"in-process: load {load_s:.1f} s + embed {embed_s:.1f} s", flush=True)

    t0 = time.perf_counter()
    # logical CPUs: the actors take `cores`, the read tasks one more
    connect(num_cpus=cores + 1, log_to_driver=False)
    init_s = time.perf_counter() - t0
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    for replicas, cpus in ((1, cores), (cores, 1)):
        # one block per Ray batch: a dataset of one block keeps one actor busy
        ds = ray.data.from_pandas(frame).repartition(-(-len(frame) // args.batch_size))
        t0 = time.perf_counter()
        out = embed_dataset(
            ds,
            gp.GemmaEmbedder(args.model, **params),
            num_replicas=replicas,
            num_cpus_per_replica=cpus,
            batch_size=args.batch_size,
        ).to_pandas()
        seconds = time.perf_counter() - t0
        got = np.stack(out.set_index("id").loc[frame["id"], "embedding"].to_numpy())
        runs.append(
            {
                "engine": "ray",
                "replicas": replicas,
                "threads_per_replica": cpus,
                "seconds": seconds,
                "max_abs_diff_vs_in_process": float(np.abs(got - reference).max()),
            }
        )
        print(f"ray {replicas} x {cpus} CPU: {seconds:.1f} s", flush=True)
    ray.shutdown()

    for run in runs:
        run["rows_per_s"] = len(texts) / run["seconds"]
        run["overhead_ratio"] = run["seconds"] / local_s
    report = {
        "command": " ".join(["python benchmarks/distributed.py", *sys.argv[1:]]),
        "machine": machine_info("ray"),
        "settings": {
            "rows": len(texts),
            "max_length": args.max_length,
            "model": args.model or "default (Gemma 3 270M)",
            "dtype": "float32",
            "cores": cores,
            "ray_init_seconds": init_s,
            "ray_batch_size": args.batch_size,
            "tokens": tokens,
        },
        "tokens_per_s_in_process": tokens / embed_s,
        "runs": runs,
    }
    md = [
        "# Ray Data against the in-process engine",
        "",
        f"`{report['command']}` on {report['machine']['date']}, "
        f"{cpu_label(report['machine']['cpu'])}; {len(texts)} texts of the bundled "
        f"sample cut to {args.max_length} tokens, default model, float32, no caches. "
        f"`ray.init` took {init_s:.1f} s (once per session, not counted below).",
        "",
        "| engine | replicas x threads | seconds | rows/s | overhead vs in-process | "
        "max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        diff = run.get("max_abs_diff_vs_in_process")
        md.append(
            f"| {run['engine']} | {run['replicas']} x {run['threads_per_replica']} | "
            f"{run['seconds']:.1f} | {run['rows_per_s']:.2f} | {run['overhead_ratio']:.2f}x | "
            f"{'-' if diff is None else f'{diff:.1e}'} |"
        )
    md += [
        "",
        "In-process seconds are model loading plus embedding; Ray's are the whole job "
        "(actor processes start, import torch and load the model, then embed, and the "
        "results come back).",
    ]
    write_report(args.out or RESULTS / "distributed", report, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
