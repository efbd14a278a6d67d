"""Warm vs cold on-disk embedding cache in cross_val_score; CatBoost fit time on CPU.

1. ``cross_val_score`` of the default pipeline (5 prompt-grouped folds, the bundled
   715 rows), first with an empty on-disk cache (``cold``: every text runs through
   the model once, then the in-memory cache serves the other folds), then in the
   same process after ``clear_memory_cache()`` with the cache now filled (``warm``:
   what a second run, another process or another classifier sees). Same scores.
2. CatBoost with the reference notebook's settings (MultiClass, learning rate 0.03,
   1000 iterations) fitted on the sample's seed-recipe embeddings (715 x hidden
   size), ``task_type="CPU"`` with every core: seconds and seconds per iteration.

Run::

    python benchmarks/cache_and_catboost.py                  # default model, max_length 512
    python benchmarks/cache_and_catboost.py --max-length 128  # a quick look

Writes ``benchmarks/results/cache_and_catboost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint dir (default: Gemma 3 270M)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--out", default=str(RESULTS / "cache_and_catboost"))
    args = p.parse_args(argv)

    from sklearn.model_selection import cross_val_score

    import gemma_pref as gp

    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    cv = gp.PromptGroupKFold(args.folds, shuffle=True, random_state=0)
    report: dict = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": len(df),
        "max_length": args.max_length,
        "folds": args.folds,
    }

    with tempfile.TemporaryDirectory() as cache_dir:
        pipe = gp.make_preference_pipeline(
            args.model, max_length=args.max_length, cache_dir=cache_dir
        )
        pipe["embedder"].fit(["warm-up"])  # load the model outside the timing
        runs = {}
        for name in ("cold", "warm"):
            gp.embedding.clear_memory_cache()
            start = time.perf_counter()
            scores = cross_val_score(pipe, df, y, cv=cv, scoring="neg_log_loss")
            runs[name] = {"seconds": time.perf_counter() - start, "log_loss": float(-scores.mean())}
            print(
                f"cross_val_score, {name} cache: {runs[name]['seconds']:.1f} s, "
                f"log loss {runs[name]['log_loss']:.4f}",
                flush=True,
            )
        files = list(Path(cache_dir).rglob("*.emb"))
        runs["cache_files"] = len(files)
        runs["cache_mb"] = sum(f.stat().st_size for f in files) / 2**20
    runs["speedup"] = runs["cold"]["seconds"] / runs["warm"]["seconds"]
    report["cross_val_score"] = runs

    # CatBoost on the seed recipe's embeddings (one vector per row)
    gp.embedding.clear_memory_cache()
    texts = gp.ArenaTextFormatter().fit_transform(df)
    X = gp.GemmaEmbedder(args.model, max_length=args.max_length).fit_transform(texts)
    clf = gp.pipeline.make_catboost_classifier(
        iterations=args.iterations, task_type="CPU", thread_count=-1
    )
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    report["catboost"] = {
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "iterations": args.iterations,
        "thread_count": os.cpu_count(),
        "seconds": seconds,
        "seconds_per_iteration": seconds / args.iterations,
    }
    print(
        f"CatBoost CPU fit: {seconds:.1f} s for {args.iterations} iterations on "
        f"{X.shape[0]} x {X.shape[1]}",
        flush=True,
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    c, w = runs["cold"], runs["warm"]
    cb = report["catboost"]
    lines = [
        f"# On-disk cache and CatBoost ({report['date']})",
        "",
        f"{report['machine']}; bundled sample, {len(df)} rows, max_length "
        f"{args.max_length}, default pipeline, {args.folds} prompt-grouped folds.",
        "",
        "| run | seconds | log loss |",
        "| --- | ---: | ---: |",
        f"| cross_val_score, cold cache | {c['seconds']:.1f} | {c['log_loss']:.4f} |",
        f"| cross_val_score, warm cache | {w['seconds']:.1f} | {w['log_loss']:.4f} |",
        "",
        f"- warm / cold speed-up: {runs['speedup']:.1f}x "
        f"({runs['cache_files']} cache files, {runs['cache_mb']:.1f} MiB)",
        f"- CatBoost (MultiClass, lr 0.03, {cb['iterations']} iterations, CPU, "
        f"{cb['thread_count']} threads) on {cb['rows']} x {cb['features']}: "
        f"{cb['seconds']:.1f} s ({cb['seconds_per_iteration'] * 1000:.0f} ms/iteration)",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
