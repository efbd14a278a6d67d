# SPDX-License-Identifier: Apache-2.0
"""The CPU configurations a user could pick, on the default model and the bundled sample.

For each configuration, in a subprocess of its own (so that its peak memory is
its own), the distinct texts of the default recipe (``ArenaTextFormatter(
layout="pair")``: prompt + one answer, two per row) are embedded once with
gemma-pref's batching: seconds, rows/s, real tokens/s, peak RSS, and the load
time (with any one-time conversion). Then, in this process: the min cosine of
each configuration's vectors against PyTorch float32, and the prompt-grouped
5-fold CV log loss of the default recipe's classifier
(``PairDifferenceClassifier``) on that configuration's vectors (the folds of
``gemma-pref cv``).

Configurations (each where it installs and runs this architecture):

- ``torch-float32``: PyTorch float32, the reference;
- ``torch-bfloat16``: PyTorch bfloat16, run only on CPUs with native bf16
  (elsewhere it is emulated, several times slower than float32);
- ``torch-int8-dynamic``: PyTorch dynamic int8 quantization of the Linear
  layers (``torch.ao.quantization.quantize_dynamic``);
- ``bnb-8bit``: bitsandbytes LLM.int8 on the CPU (``quantization="8bit"``);
- ``onnxruntime``: ``GemmaEmbedder(backend="onnxruntime")``, float32 (its
  load time includes the one-time ONNX export);
- ``onnxruntime-int8-dynamic``: the same ONNX graph with ONNX Runtime's
  dynamic int8 quantization of the MatMuls;
- ``openvino``: the same ONNX graph compiled by OpenVINO (float32 where the
  CPU has no bf16; OpenVINO picks bf16 by itself on CPUs that have it).

Run (about 35 minutes for every configuration on 2 AVX2 cores)::

    pip install -e ".[bench]"
    python benchmarks/cpu_backends.py --out benchmarks/results/cpu-backends
    python benchmarks/cpu_backends.py --rows 64 --configs torch-float32,onnxruntime  # a look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, PeakRSS, cpu_label, machine_info, write_report

CONFIGS: dict[str, str] = {
    "torch-float32": "PyTorch float32 (reference)",
    "torch-bfloat16": "PyTorch bfloat16 (CPUs with native bf16 only)",
    "torch-int8-dynamic": "PyTorch dynamic int8 Linear layers (torch.ao quantize_dynamic)",
    "bnb-8bit": "bitsandbytes LLM.int8 on CPU (quantization='8bit')",
    "onnxruntime": "ONNX Runtime float32 (backend='onnxruntime')",
    "onnxruntime-int8-dynamic": "ONNX Runtime, dynamic int8 MatMuls of the same graph",
    "openvino": "OpenVINO, the same ONNX graph",
}
MIN_COSINE = 0.999
MAX_LOG_LOSS_MOVE = 0.005


# --------------------------------------------------------------- the worker
class _OpenVinoReplica:
    """An OpenVINO compiled model called like gemma-pref's ONNX replicas."""

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(
            core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": threads}
        )
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch

        out = self.compiled(
            {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        )[0]
        return torch.from_numpy(np.ascontiguousarray(out))


def _embedder(config: str, model: str | None, max_length: int) -> Any:
    import gemma_pref as gp

    params: dict[str, Any] = {
        "max_length": max_length,
        "memory_cache": False,
        "devices": "cpu",
        "show_progress_bar": False,
    }
    if config in ("torch-float32", "torch-int8-dynamic"):
        params.update(backend="torch", dtype="float32")
    elif config == "torch-bfloat16":
        params.update(backend="torch", dtype="bfloat16")
    elif config == "bnb-8bit":
        params.update(backend="torch", dtype="float32", quantization="8bit")
    else:  # the ONNX graph, as gemma-pref exports it
        params.update(backend="onnxruntime")
    return gp.GemmaEmbedder(model, **params)


def _swap_replicas(config: str, emb: Any, max_length: int) -> tuple[Any, dict[str, Any]]:
    """A runtime of the exported graph run by another engine, and what it took."""
    import torch

    from gemma_pref.embedding._engine import Runtime

    emb.load()  # exports (or reuses) the checked float32 graph
    runtime = emb._lazy_runtime[1]
    onnx_path = runtime.models[0].path
    threads = torch.get_num_threads()
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if config == "onnxruntime-int8-dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from gemma_pref.backend._onnx import OnnxReplica

        q_path = onnx_path.with_name("model.int8-dynamic.onnx")
        if not q_path.is_file():
            quantize_dynamic(
                str(onnx_path),
                str(q_path),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                use_external_data_format=True,
            )
        replica: Any = OnnxReplica(q_path, threads)
    else:
        replica = _OpenVinoReplica(onnx_path, threads)
        extra["openvino_precision"] = replica.precision
    extra["convert_seconds"] = time.perf_counter() - start
    swapped = Runtime(
        runtime.tokenizer,
        [replica],
        ["cpu"],
        torch.float32,
        config,
        exported_head=runtime.exported_head,
    )
    return swapped, extra


def worker(args: argparse.Namespace) -> int:
    import torch

    texts = json.loads(Path(args.texts).read_text())
    warnings.simplefilter("ignore")
    with PeakRSS() as rss:
        start = time.perf_counter()
        emb = _embedder(args.worker, args.model, args.max_length)
        extra: dict[str, Any] = {"compute_path": emb.compute_path()}
        runtime = None
        if args.worker in ("onnxruntime-int8-dynamic", "openvino"):
            runtime, more = _swap_replicas(args.worker, emb, args.max_length)
            extra.update(more)
        else:
            models = emb.load()
            if args.worker == "torch-int8-dynamic":
                from torch.ao.quantization import quantize_dynamic

                quantize_dynamic(models[0], {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        load_seconds = time.perf_counter() - start

        def embed(rows: list[str]) -> np.ndarray:
            if runtime is None:
                return np.asarray(emb.transform(rows))
            return runtime.run(
                rows,
                runtime.exported_head,
                max_length=args.max_length,
                batch_size=emb.batch_size,
                max_tokens_per_batch=None,
            )

        embed(texts[:8])  # first-call costs out of the timing
        start = time.perf_counter()
        vectors = embed(texts)
        seconds = time.perf_counter() - start
    np.save(args.vectors, vectors)
    result = {
        "seconds": seconds,
        "load_seconds": load_seconds,
        "peak_rss_gb": rss.peak / 2**30,
        "threads": torch.get_num_threads(),
        **extra,
    }
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


# --------------------------------------------------------------- the parent
def _texts(rows: int | None) -> tuple[Any, Any, list[str], np.ndarray]:
    """Rows, labels, the distinct pair texts, and each row's two text indices."""
    import gemma_pref as gp

    df = gp.load_arena_sample()
    if rows:
        df = df.iloc[:rows].reset_index(drop=True)
    y = gp.data.labels_from_winner(df)
    pairs = np.asarray(gp.ArenaTextFormatter(layout="pair").fit_transform(df), dtype=object)
    distinct: dict[str, int] = {}
    index = np.empty(pairs.shape, dtype=np.int64)
    for i, row in enumerate(pairs):
        for j, text in enumerate(row):
            index[i, j] = distinct.setdefault(text, len(distinct))
    return df, y, list(distinct), index


def _cv(df: Any, y: Any, X: np.ndarray) -> dict[str, float]:
    from sklearn.base import clone
    from sklearn.metrics import log_loss

    from gemma_pref.evaluation.cross_validation import cv_splits
    from gemma_pref.pipeline import make_recipe_classifier

    losses = []
    for train, test in cv_splits(df, y, folds=5, grouped=True, random_state=0):
        clf = clone(make_recipe_classifier("pairwise", "auto")).fit(X[train], y[train])
        losses.append(log_loss(y[test], clf.predict_proba(X[test]), labels=[0, 1, 2]))
    return {"cv_log_loss": float(np.mean(losses)), "cv_log_loss_std": float(np.std(losses))}


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.nanmin(cos)) if np.isfinite(cos).any() else float("nan")


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# CPU configurations of GemmaEmbedder ({report['machine']['date']})",
        "",
        f"CPU: {report['cpu']}. Model: `{report['model']}`. {report['rows']} rows of the "
        f"bundled sample, {report['texts']} distinct pair texts (prompt + one answer), "
        f"max_length {report['max_length']}, {report['real_tokens']} real tokens; "
        "gemma-pref's batching (length-sorted, 8 texts per batch); each configuration in "
        "a subprocess of its own.",
        "",
        f"Command: `{report['command']}`",
        "",
        "| configuration | load s (conversion) | embed s | rows/s | real tokens/s | vs float32 "
        "| peak RSS GiB | min cosine vs float32 | CV log loss | Δ CV | passes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in report["results"].items():
        if "skipped" in r:
            lines.append(f"| `{name}` | skipped: {r['skipped']} |  |  |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| `{name}` | {r['load_seconds']:.1f} | {r['seconds']:.1f} | {r['rows_per_s']:.2f} "
            f"| {r['real_tokens_per_s']:.0f} | {r['speedup_vs_float32']:.2f}x "
            f"| {r['peak_rss_gb']:.2f} | {r['min_cosine']:.5f} | {r['cv_log_loss']:.4f} "
            f"| {r['cv_delta']:+.4f} | {'yes' if r['passes'] else 'no'} |"
        )
    lines += [
        "",
        f"Passes: min cosine >= {MIN_COSINE} against PyTorch float32 and CV log loss within "
        f"{MAX_LOG_LOSS_MOVE} of it. Fastest that passes: **{report['fastest_passing']}**; "
        f"`GemmaEmbedder(backend='auto')` chose `{report['auto_choice']}` on this CPU.",
        "",
        *(f"- `{k}`: {v}" for k, v in CONFIGS.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the default model)")
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (the demo's)")
    p.add_argument("--rows", type=int, default=None, help="first N rows (default: all 715)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configurations")
    p.add_argument("--out", default=str(RESULTS / "cpu-backends"), help="output stem")
    p.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    p.add_argument("--texts", help=argparse.SUPPRESS)
    p.add_argument("--vectors", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    import gemma_pref as gp
    from gemma_pref.backend._compute import cpu_supports_bf16

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        p.error(f"unknown configurations {unknown}; choose among {list(CONFIGS)}")
    if "torch-float32" not in configs:
        configs.insert(0, "torch-float32")  # the reference of the cosines and the ratios
    df, y, texts, index = _texts(args.rows)
    emb = gp.GemmaEmbedder(args.model, max_length=args.max_length)
    auto = emb.compute_path()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(emb._model_dir(), local_files_only=True)
    real_tokens = sum(
        len(ids) for ids in tok(texts, truncation=True, max_length=args.max_length)["input_ids"]
    )
    results: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}
    work = Path(tempfile.mkdtemp(prefix="cpu-backends-"))
    (work / "texts.json").write_text(json.dumps(texts))
    env = dict(os.environ)
    # a fresh export for the ONNX configurations, so that its cost is measured
    home = work / "home"
    home.mkdir()
    from gemma_pref.backend.default_model import demo_model_path

    model_dir = Path(args.model) if args.model else demo_model_path()
    (home / "models").mkdir()
    if not args.model:  # the converted default model, without converting it again
        (home / "models" / model_dir.name).symlink_to(model_dir)
    env["GEMMA_PREF_HOME"] = str(home)
    for name in configs:
        if name == "torch-bfloat16" and not cpu_supports_bf16():
            results[name] = {
                "skipped": "no native bf16 on this CPU (emulated: slower than float32)"
            }
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--texts",
            str(work / "texts.json"),
            "--vectors",
            str(work / f"{name}.npy"),
            "--result",
            str(work / f"{name}.json"),
            "--max-length",
            str(args.max_length),
        ] + (["--model", args.model] if args.model else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            results[name] = {"skipped": f"failed: {proc.stderr.strip().splitlines()[-1:]}"}
            print(proc.stderr[-2000:], flush=True)
            continue
        r = json.loads((work / f"{name}.json").read_text())
        vectors[name] = np.load(work / f"{name}.npy")
        r["rows_per_s"] = len(df) / r["seconds"]
        r["texts_per_s"] = len(texts) / r["seconds"]
        r["real_tokens_per_s"] = real_tokens / r["seconds"]
        results[name] = r
        print(f"  {r['seconds']:.1f} s, {r['real_tokens_per_s']:.0f} tokens/s", flush=True)
    ref = vectors["torch-float32"]
    ref_cv = None
    for name, r in results.items():
        if "skipped" in r:
            continue
        X = vectors[name][index].reshape(len(df), -1)
        r.update(_cv(df, y, X))
        if name == "torch-float32":
            ref_cv = r["cv_log_loss"]
        r["min_cosine"] = _min_cosine(vectors[name], ref)
        r["speedup_vs_float32"] = results["torch-float32"]["seconds"] / r["seconds"]
    for r in results.values():
        if "skipped" not in r:
            r["cv_delta"] = r["cv_log_loss"] - ref_cv
            r["passes"] = bool(
                r["min_cosine"] >= MIN_COSINE and abs(r["cv_delta"]) < MAX_LOG_LOSS_MOVE
            )
    passing = [n for n, r in results.items() if r.get("passes")]
    fastest = max(passing, key=lambda n: results[n]["real_tokens_per_s"]) if passing else None
    machine = machine_info("onnxruntime", "openvino", "bitsandbytes")
    report = {
        "machine": machine,
        "cpu": cpu_label(machine["cpu"]),
        "model": str(model_dir),
        "rows": len(df),
        "texts": len(texts),
        "max_length": args.max_length,
        "real_tokens": real_tokens,
        "command": " ".join(
            ["python", "benchmarks/cpu_backends.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "auto_choice": f"{auto['backend']} {auto['dtype']} ({auto['reason']})",
        "fastest_passing": fastest,
        "thresholds": {"min_cosine": MIN_COSINE, "max_log_loss_move": MAX_LOG_LOSS_MOVE},
        "results": results,
    }
    write_report(args.out, report, _markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
