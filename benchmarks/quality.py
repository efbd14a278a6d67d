# SPDX-License-Identifier: Apache-2.0
"""Measured prediction quality of gemma-pref configurations (issue 6, item 5);
the runner (the configurations live in ``quality_configs.py``).

Runs k-fold cross-validation grouped by prompt
(``PromptGroupKFold(n_splits=5, shuffle=True, random_state=0)``) on the bundled
715-row sample of the Kaggle "LMSYS - Chatbot Arena" training set and reports,
for each configuration, the log loss and the accuracy (mean and standard
deviation over the folds), the pooled out-of-fold scores, the paired
difference to the "structure features + LogisticRegression" baseline, and the
time spent in ``fit`` and ``predict_proba``.

Every configuration is an unfitted scikit-learn estimator whose input is the
raw arena DataFrame; each fold fits a ``clone`` of it on the training rows only
and scores it on the held-out rows. Nothing is tuned on the folds it is scored
on: hyper-parameters are either fixed before the run (see ``C_A_PRIORI`` and
``FAST_CATBOOST``) or chosen by nested cross-validation inside the training
rows of each outer fold (the ``*-cv`` configurations: ``GridSearchCV`` over
``C_GRID`` with ``PromptGroupKFold(n_splits=5, shuffle=True, random_state=1)``
on the training rows).

Embeddings come from :class:`gemma_pref.GemmaEmbedder` with an on-disk cache
(``--cache-dir``): each distinct text is embedded once, ever, and reused by
every fold, configuration and later run. Before the configurations run, the
script embeds every text set they need (original rows, A/B-swapped rows, and
the token-budget formatter's texts) and records how long that took; the
per-configuration times therefore measure the classifiers with the embeddings
already cached (plus the formatting, cache look-ups and, for the budget
formatter, the tokenization). A cold run costs the embedding time on top.

Usage (from the repository root, with the package installed)::

    python benchmarks/quality.py                       # all configurations
    python benchmarks/quality.py --list                # names and descriptions
    python benchmarks/quality.py --configs prior,struct-lr,emb-cb
    python benchmarks/quality.py --max-length 256 --configs emb-lr-cv,emb-cb

Results go to ``<out-dir>/<name>.json`` and ``<out-dir>/<name>.md`` (name
``quality`` at the default max length, ``quality-maxlen<N>`` otherwise). The
JSON is rewritten after each configuration; ``--resume`` keeps configurations
already in it (same settings) and runs only the missing ones.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from quality_configs import (
    BASELINE,
    BY_NAME,
    C_A_PRIORI,
    C_GRID,
    CONFIGS,
    FAST_CATBOOST,
    REPO,
    TEXT_SETS,
    Config,
    Context,
    text_formatter,
)


# ---------------------------------------------------------------------- running
def _chosen_params(model: Any) -> dict[str, Any] | None:
    """C chosen inside a fit: by GridSearchCV or by a LogisticRegressionCV."""
    best = getattr(model, "best_params_", None)
    if best is not None:
        return {k.rsplit("__", 1)[-1]: v for k, v in best.items()}
    if hasattr(model, "weights_"):  # PreferenceBlendClassifier
        return {
            "C": model.C_embedding_,
            "C_structure": model.C_structure_,
            "weights": model.weights_,
            "inner_cv": {k: round(v, 4) for k, v in model.cv_log_loss_.items()},
        }
    from sklearn.base import BaseEstimator

    stack = [model]
    while stack:
        est = stack.pop()
        if isinstance(getattr(est, "C_", None), float):  # PairDifferenceClassifier
            return {"C": est.C_}
        if hasattr(est, "Cs_") and hasattr(est, "C_"):  # a fitted LogisticRegressionCV
            return {"C": float(np.ravel(est.C_)[0])}
        for attr in ("estimator_", "steps", "transformer_list"):
            value = getattr(est, attr, None)
            if isinstance(value, BaseEstimator):
                stack.append(value)
            elif isinstance(value, list):
                stack += [s[1] for s in value if isinstance(s[1], BaseEstimator)]
    return None


def run_config(
    config: Config, ctx: Context, df: Any, y: np.ndarray, splits: list, log: Callable
) -> dict[str, Any]:
    """Cross-validate one configuration; per-fold scores, times and OOF scores."""
    from gemma_pref import cross_validate_preference

    estimator = config.build(ctx)
    chosen: dict[int, dict[str, Any]] = {}

    def on_fold(fold: Any, model: Any) -> None:
        c = _chosen_params(model)
        if c is not None:
            chosen[fold.fold] = c
        log(
            f"  {config.name} fold {fold.fold}: log loss {fold.log_loss:.4f}, accuracy "
            f"{fold.accuracy:.3f}, fit {fold.fit_s:.1f} s, predict "
            f"{fold.predict_s:.1f} s" + (f", chosen {c}" if c else "")
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recorded per fold in the report
        cv = cross_validate_preference(estimator, df, y, splits=splits, on_fold=on_fold)
    summary = cv.to_dict(ddof=1)
    folds = []
    for f, row in zip(cv.folds, summary["per_fold"]):
        row["test_rows"] = row.pop("rows")
        if f.fold in chosen:
            row["chosen"] = chosen[f.fold]
        folds.append(row)
    return {
        "name": config.name,
        "description": config.description,
        "text_sets": list(config.texts),
        "log_loss": summary["log_loss"],
        "log_loss_std": summary["log_loss_std"],
        "accuracy": summary["accuracy"],
        "accuracy_std": summary["accuracy_std"],
        "oof": summary["oof"],
        "fit_s": float(sum(f.fit_s for f in cv.folds)),
        "predict_s": float(sum(f.predict_s for f in cv.folds)),
        "per_fold": folds,
        "warnings": sorted({w for f in cv.folds for w in f.warnings}),
        "estimator": repr(estimator),
    }


def _layer_tag(layer: Any) -> str:
    if isinstance(layer, range):
        return f"{layer.start}-{layer.stop - 1}"
    return str(layer)


def warm_text_sets(
    needed: list[tuple[str, Any]], ctx: Context, df: Any, log: Callable
) -> dict[str, dict[str, Any]]:
    """Embed every (text set, layer) the configurations need, in the order of
    the configurations; time it."""
    import gemma_pref as gp

    out = {}
    layers = list(dict.fromkeys(layer for _, layer in needed))
    for name, layer in ((n, la) for la in layers for n in TEXT_SETS if (n, la) in needed):
        rows = gp.models.swap_ab(df) if name.endswith("swapped") else df
        t0 = time.perf_counter()
        layout = "pair" if name.startswith("pair") else "joint"
        budget = name.startswith("budget") or name == "pair-budget"
        texts = text_formatter(ctx, budget=budget, layout=layout).fit_transform(rows)
        t1 = time.perf_counter()
        emb = gp.GemmaEmbedder(ctx.model, **ctx.embedder_params(layer))
        emb.fit_transform(texts)
        t2 = time.perf_counter()
        path = emb.compute_path()
        decoder_layers = path.get("decoder_layers")
        runtime = getattr(emb, "_lazy_runtime", None)
        emb.free()
        out[f"{name}@layer={_layer_tag(layer)}"] = {
            "layer": _layer_tag(layer),
            "decoder_layers": decoder_layers,
            "texts": int(len(texts)),
            "distinct_texts": int(len(set(np.ravel(texts)))),
            "format_s": t1 - t0,
            "embed_s": t2 - t1,
            "compute": (
                runtime[1].description
                if runtime
                else f"{path['backend']} {path['dtype']} (read from the cache)"
            ),
        }
        log(
            f"text set {name} at layer {_layer_tag(layer)}: {len(texts)} texts formatted "
            f"in {t1 - t0:.1f} s, embedded (or read from the cache) in {t2 - t1:.1f} s"
        )
    return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover
        gpu = None
    from _common import cpu_info, cpu_label

    return {
        "cpu": cpu,
        "cpu_info": cpu_info(),
        "cpu_label": cpu_label(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _library() -> dict[str, Any]:
    """Where gemma_pref was imported from and, inside this repository, its commit."""
    import subprocess

    import gemma_pref

    path = Path(gemma_pref.__file__).resolve().parent
    info: dict[str, Any] = {"path": str(path)}
    if path.parent == REPO:

        def git(*cmd: str) -> str:
            return subprocess.run(
                ["git", *cmd], cwd=REPO, capture_output=True, text=True, check=False
            ).stdout.strip()

        info["commit"] = git("rev-parse", "--short", "HEAD")
        info["uncommitted"] = git("status", "--porcelain", "--", "gemma_pref").splitlines()
    return info


def _versions() -> dict[str, str]:
    out = {}
    for mod in ("gemma_pref", "sklearn", "catboost", "torch", "transformers", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover
            out[mod] = "?"
    return out


# ---------------------------------------------------------------------- reports
def _paired(result: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any] | None:
    if base is None:
        return None
    a = np.array([f["log_loss"] for f in result["per_fold"]])
    b = np.array([f["log_loss"] for f in base["per_fold"]])
    d = a - b
    return {
        "mean": float(d.mean()),
        "std": float(d.std(ddof=1)),
        "folds_better": int((d < 0).sum()),
    }


def write_reports(report: dict[str, Any], out_dir: Path, name: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = report["results"]
    base = results.get(BASELINE)
    for r in results.values():
        r["vs_baseline"] = _paired(r, base) if r["name"] != BASELINE else None
    tmp = out_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(out_dir / f"{name}.json")

    s = report["settings"]
    lines = [
        f"# gemma-pref quality study ({name})",
        "",
        f"Data: bundled sample, {report['data']['rows']} rows "
        f"(classes a/b/tie: {report['data']['class_counts']}), "
        f"{report['data']['distinct_prompts']} distinct prompts. "
        f"CV: PromptGroupKFold(n_splits={s['folds']}, shuffle=True, random_state=0). "
        f"Model: {report['model']['name']} (hidden size {report['model']['hidden_size']}), "
        f"max_length {s['max_length']}, layer {s.get('layer', '-1')} (where a "
        "configuration names none)"
        + (
            f"; GemmaEmbedder({', '.join(f'{k}={v!r}' for k, v in s['embedder'].items())})"
            if s.get("embedder")
            else ""
        )
        + ("; 8-bit weights quantized as on a CPU without VNNI (7-bit)" if s.get("no_vnni") else "")
        + ".",
        "",
        f"Runs: {', '.join(r['started'] for r in report['runs'])} on "
        f"{report['machine'].get('cpu_label', report['machine']['cpu'])} "
        f"({report['machine']['affinity']} cores, GPU: {report['machine']['gpu']}); "
        f"gemma_pref {report['versions']['gemma_pref']}, scikit-learn "
        f"{report['versions']['sklearn']}, catboost {report['versions']['catboost']}, "
        f"torch {report['versions']['torch']}.",
        "",
        "Commands: " + "; ".join(f"`{r['command']}`" for r in report["runs"]),
        "",
        "Log loss and accuracy: mean ± std (ddof=1) over the folds. OOF: pooled "
        f"out-of-fold log loss. Δ {BASELINE}: per-fold log loss minus that of "
        f"`{BASELINE}`, mean ± std, and the folds (of {s['folds']}) where the "
        "configuration is better. Time: fit + predict_proba summed over the folds, "
        "embeddings already cached (see below), on a shared machine (noisy).",
        "",
        f"| config | log loss | accuracy | OOF log loss | Δ {BASELINE} | fit + predict (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    ranked = sorted(results.values(), key=lambda r: r["log_loss"])
    for r in ranked:
        v = r.get("vs_baseline")
        delta = (
            "—"
            if v is None
            else (f"{v['mean']:+.4f} ± {v['std']:.4f} ({v['folds_better']}/{s['folds']})")
        )
        lines.append(
            f"| `{r['name']}` | {r['log_loss']:.4f} ± {r['log_loss_std']:.4f} | "
            f"{r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | {r['oof']['log_loss']:.4f} | "
            f"{delta} | {r['fit_s']:.0f} + {r['predict_s']:.0f} |"
        )
    lines += [
        "",
        "Log loss per fold (the same held-out rows in every column):",
        "",
        "| config | " + " | ".join(f"fold {i}" for i in range(s["folds"])) + " |",
        "| --- |" + " --- |" * s["folds"],
    ]
    for r in ranked:
        cells = " | ".join(f"{f['log_loss']:.4f}" for f in r["per_fold"])
        lines.append(f"| `{r['name']}` | {cells} |")
    lines += ["", "Configurations:", ""]
    for r in results.values():
        chosen = [f.get("chosen") for f in r["per_fold"] if f.get("chosen")]
        extra = f" Chosen per fold: {[c['C'] for c in chosen]}." if chosen else ""
        if chosen and "weights" in chosen[0]:
            extra = (
                " Chosen per fold (C embedding, C structure, exponents): "
                f"{[(c['C'], c['C_structure'], c['weights']) for c in chosen]}."
            )
        lines.append(f"- `{r['name']}`: {r['description']}.{extra}")
    if report.get("text_sets"):
        lines += ["", "Embedding the text sets (0 s when already in the on-disk cache):", ""]
        for k, v in report["text_sets"].items():
            lines.append(
                f"- {k}: {v['texts']} texts ({v['distinct_texts']} distinct), formatted "
                f"in {v['format_s']:.1f} s, embedded in {v['embed_s']:.1f} s"
                f" ({v.get('decoder_layers') or 'all'} decoder layers run"
                + (f"; {v['compute']})" if v.get("compute") else ")")
            )
    tmp = out_dir / f".{name}.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out_dir / f"{name}.md")


# ------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from gemma_pref.backend.default_model import gemma_pref_home

    p = argparse.ArgumentParser(
        description="Prompt-grouped k-fold CV of gemma-pref configurations on the "
        "bundled 715-row arena sample (log loss, accuracy, time).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="GemmaEmbedder max_length (256: the default recipe's)",
    )
    p.add_argument("--folds", type=int, default=5, help="number of CV folds")
    p.add_argument(
        "--layer",
        default="-1",
        help="GemmaEmbedder layer of the configurations that name none: an index, "
        "or 'A-B' for the mean of layers A..B",
    )
    p.add_argument(
        "--cache-dir",
        default=str(gemma_pref_home() / "embeddings"),
        help="GemmaEmbedder's on-disk embedding cache",
    )
    p.add_argument(
        "--model",
        default=None,
        help="local checkpoint directory; default: the default model (Gemma 3 270M)",
    )
    p.add_argument(
        "--out-dir",
        default=str(REPO / "benchmarks" / "results"),
        help="where <name>.json and <name>.md are written",
    )
    p.add_argument(
        "--name",
        default=None,
        help="file stem of the outputs (default: 'quality' at max length "
        "256, else 'quality-maxlen<N>')",
    )
    p.add_argument(
        "--configs",
        default=None,
        help="comma-separated configuration names (default: all; see --list)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the configurations already in <name>.json (same "
        "settings) and run only the others",
    )
    p.add_argument(
        "--dtype", default=None, help="GemmaEmbedder dtype (default: the library's, 'auto')"
    )
    p.add_argument(
        "--backend", default=None, help="GemmaEmbedder backend (default: the library's, 'auto')"
    )
    p.add_argument(
        "--quantization",
        default=None,
        choices=["8bit", "4bit"],
        help="GemmaEmbedder quantization (8bit on CPU: ONNX Runtime int8 weights)",
    )
    p.add_argument(
        "--no-vnni",
        action="store_true",
        help="quantize as on a CPU without VNNI (7-bit weights, reduce_range) whatever "
        "this CPU has: the arithmetic of 8-bit weights on AVX2-only CPUs",
    )
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite <name>.md from <name>.json and exit (nothing is run)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for c in CONFIGS:
            print(f"{c.name:34s} {c.description}")
        return 0
    if args.configs:
        names = [n.strip() for n in args.configs.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            print(f"unknown configurations {unknown}; valid: {list(BY_NAME)}", file=sys.stderr)
            return 2
        selected = [BY_NAME[n] for n in names]
    else:
        selected = list(CONFIGS)
    name = args.name or (
        "quality" if args.max_length == 256 else f"quality-maxlen{args.max_length}"
    )
    out_dir = Path(args.out_dir)
    if args.report_only:
        write_reports(json.loads((out_dir / f"{name}.json").read_text()), out_dir, name)
        return 0

    def log(msg: str) -> None:
        print(f"[{_dt.datetime.now():%H:%M:%S}] {msg}", flush=True)

    import gemma_pref as gp
    from gemma_pref.backend import _checkpoints, _compute
    from gemma_pref.backend.default_model import demo_model_path

    model_dir = Path(args.model).expanduser() if args.model else demo_model_path()
    layer: Any = (
        range(int(args.layer.split("-")[0]), int(args.layer.split("-")[1]) + 1)
        if "-" in args.layer.lstrip("-")
        else int(args.layer)
    )
    embedder = {
        k: v
        for k, v in {
            "dtype": args.dtype,
            "backend": args.backend,
            "quantization": args.quantization,
        }.items()
        if v is not None
    }
    if args.no_vnni:
        _compute.cpu_has_vnni = lambda: False  # the vectors' cache key follows
    ctx = Context(args.model, model_dir, args.max_length, args.cache_dir, layer, embedder)
    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    cv = gp.PromptGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    splits = list(cv.split(df, y))

    settings = {
        "max_length": args.max_length,
        "layer": args.layer,
        "folds": args.folds,
        "model": args.model,
        "cache_dir": args.cache_dir,
        **({"embedder": embedder} if embedder else {}),
        **({"no_vnni": True} if args.no_vnni else {}),
    }
    report: dict[str, Any] = {
        "runs": [
            {
                "started": f"{_dt.datetime.now():%Y-%m-%d %H:%M}",
                "command": " ".join(
                    ["python benchmarks/quality.py", *(argv if argv is not None else sys.argv[1:])]
                ),
            }
        ],
        "settings": settings,
        "constants": {
            "C_A_PRIORI": C_A_PRIORI,
            "C_GRID": C_GRID,
            "FAST_CATBOOST": FAST_CATBOOST,
            "baseline": BASELINE,
        },
        "data": {
            "rows": int(len(df)),
            "class_counts": np.bincount(y, minlength=3).tolist(),
            "distinct_prompts": int(gp.evaluation.prompt_groups(df).max() + 1),
            "fold_test_rows": [int(len(t)) for _, t in splits],
        },
        "model": {
            "name": args.model or f"default ({model_dir.name})",
            "path": str(model_dir),
            "fingerprint": _checkpoints.model_fingerprint(model_dir),
            "hidden_size": _checkpoints.hidden_size_of(_checkpoints.load_config(model_dir)),
        },
        "machine": _machine(),
        "versions": _versions(),
        "library": _library(),
        "text_sets": {},
        "results": {},
    }
    path = out_dir / f"{name}.json"
    if args.resume and path.is_file():
        old = json.loads(path.read_text())
        if old.get("settings") == settings:
            report["results"] = old.get("results", {})
            report["text_sets"] = old.get("text_sets", {})
            old_runs = old.get("runs") or [
                {"started": old.get("started"), "command": old.get("command")}
            ]
            report["runs"] = old_runs + report["runs"]
            log(f"resuming: {len(report['results'])} configurations kept from {path}")
        else:
            log(f"not resuming: {path} has other settings {old.get('settings')}")
    todo = [c for c in selected if c.name not in report["results"]]

    needed = list(
        dict.fromkeys((t, ctx.layer if c.layer is None else c.layer) for c in todo for t in c.texts)
    )
    log(
        f"{len(todo)} configurations to run; text sets to embed: "
        f"{[(n, _layer_tag(la)) for n, la in needed]}"
    )
    for config in todo:
        # embed what this configuration needs first (timed), then cross-validate
        mine = [(t, ctx.layer if config.layer is None else config.layer) for t in config.texts]
        missing = [k for k in mine if f"{k[0]}@layer={_layer_tag(k[1])}" not in report["text_sets"]]
        report["text_sets"].update(warm_text_sets(missing, ctx, df, log))
        log(f"{config.name}: {config.description}")
        t0 = time.perf_counter()
        result = run_config(config, ctx, df, y, splits, log)
        report["results"][config.name] = result
        write_reports(report, out_dir, name)
        log(
            f"{config.name}: log loss {result['log_loss']:.4f} ± "
            f"{result['log_loss_std']:.4f}, accuracy {result['accuracy']:.3f}, "
            f"{time.perf_counter() - t0:.0f} s"
        )
    write_reports(report, out_dir, name)
    log(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
