# SPDX-License-Identifier: Apache-2.0
"""Fine-tuning: training and inference speed, memory, and log loss of recipe="finetune".

CPU (default): the default model (Gemma 3 270M) fine-tuned with the library's
defaults (LoRA r=16 on all linear layers, 1 epoch, batches of 4, 2 per step,
learning rate 2e-4) on the training rows of one prompt-grouped split of the
bundled sample (``PromptGroupKFold(5, shuffle=True, random_state=0)``, fold
0: 572 rows to train, 143 to test), then scored on the test rows, next to the
pairwise default and the class prior on the same split::

    python benchmarks/finetune.py                         # CPU, max_length 256
    python benchmarks/finetune.py --max-length 512 --epochs 2

GPU (``--gpu``): the Gemma-2-9b architecture with random weights (the
published sizes, as ``benchmarks/gpu.py``), QLoRA 4-bit and bf16 LoRA at 1024
tokens: training tokens/s, peak CUDA memory, inference tokens/s and the
fraction of the GPU's dense bf16 FLOP limit::

    python benchmarks/finetune.py --gpu
    python benchmarks/finetune.py --gpu --tiny --device cpu   # smoke test of the script

Writes ``benchmarks/results/finetune-cpu.{json,md}`` or ``finetune-gpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, PeakRSS, cpu_label, machine_info, write_report


def _split(df, y):
    import gemma_pref as gp

    cv = gp.PromptGroupKFold(n_splits=5, shuffle=True, random_state=0)
    return next(iter(cv.split(df, y)))


def _train_tokens(pipe, rows, max_length: int) -> int:
    from transformers import AutoTokenizer

    texts = pipe["formatter"].fit_transform(rows)
    tok = AutoTokenizer.from_pretrained(str(pipe["classifier"]._model_dir()))
    return int(sum(min(len(ids), max_length) for ids in tok(list(texts))["input_ids"]))


def cpu_run(args: argparse.Namespace) -> None:
    import gemma_pref as gp

    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    train, test = _split(df, y)
    if args.rows:
        train = train[: args.rows]
    pipe = gp.make_preference_pipeline(
        args.model,
        recipe="finetune",
        max_length=args.max_length,
        num_epochs=args.epochs,
        random_state=0,
        show_progress_bar=True,
    )
    tokens = _train_tokens(pipe, df.iloc[train], args.max_length) * args.epochs
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        pipe.fit(df.iloc[train], y[train])
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proba = pipe.predict_proba(df.iloc[test])
        predict_s = time.perf_counter() - t0
    test_tokens = _train_tokens(pipe, df.iloc[test], args.max_length)
    clf = pipe["classifier"]
    scores = gp.evaluation.preference_scores(y[test], proba)
    prior = np.bincount(y[train], minlength=3) / len(train)
    baseline = gp.make_preference_pipeline(args.model, max_length=args.max_length)
    t0 = time.perf_counter()
    baseline.fit(df.iloc[train], y[train])
    pairwise = gp.evaluation.preference_scores(y[test], baseline.predict_proba(df.iloc[test]))
    pairwise_s = time.perf_counter() - t0
    report = {
        "command": " ".join(["python benchmarks/finetune.py", *sys.argv[1:]]),
        "machine": machine_info("peft"),
        "settings": {
            "model": args.model or "default (Gemma 3 270M)",
            "max_length": args.max_length,
            "epochs": args.epochs,
            "train_rows": int(len(train)),
            "test_rows": int(len(test)),
            "classifier": repr(clf),
            "split": "PromptGroupKFold(5, shuffle=True, random_state=0), fold 0",
        },
        "training": {
            "seconds": fit_s,
            "tokens": tokens,
            "tokens_per_s": tokens / fit_s,
            "optimizer_steps": clf.n_steps_,
            "first_losses": clf.loss_curve_[:5],
            "last_losses": clf.loss_curve_[-5:],
            "peak_rss_gib": rss.peak / 2**30,
        },
        "inference": {
            "seconds": predict_s,
            "tokens": test_tokens,
            "tokens_per_s": test_tokens / predict_s,
        },
        "log_loss": {
            "finetune": scores,
            "pairwise_default": {**pairwise, "seconds_with_embedding": pairwise_s},
            "class_prior": gp.evaluation.preference_scores(y[test], np.tile(prior, (len(test), 1))),
        },
        "loss_curve": clf.loss_curve_,
    }
    cpu = report["machine"]["cpu"]
    md = [
        "# Fine-tuning on the CPU",
        "",
        f"Command: `{report['command']}` ({report['machine']['date']}, {cpu_label(cpu)}).",
        "",
        f"{report['settings']['model']}, max_length {args.max_length}, {args.epochs} epoch(s), "
        f"{len(train)} training rows, {len(test)} test rows "
        f"({report['settings']['split']}).",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| training time | {fit_s:.0f} s |",
        f"| training tokens/s | {tokens / fit_s:.1f} |",
        f"| optimizer steps | {clf.n_steps_} |",
        f"| peak RSS | {rss.peak / 2**30:.2f} GiB |",
        f"| inference tokens/s | {test_tokens / predict_s:.1f} |",
        "",
        "| model | test log loss | test accuracy |",
        "| --- | ---: | ---: |",
        f"| recipe='finetune' | {scores['log_loss']:.4f} | {scores['accuracy']:.3f} |",
        f"| pairwise default | {pairwise['log_loss']:.4f} | {pairwise['accuracy']:.3f} |",
        f"| class prior | {report['log_loss']['class_prior']['log_loss']:.4f} | — |",
        "",
        f"Loss of the first 5 optimizer steps: {[round(v, 3) for v in clf.loss_curve_[:5]]}; "
        f"of the last 5: {[round(v, 3) for v in clf.loss_curve_[-5:]]}.",
    ]
    write_report(args.out or RESULTS / "finetune-cpu", report, "\n".join(md))
    print("\n".join(md))


# ---------------------------------------------------------------------- GPU
def gpu_one(args: argparse.Namespace) -> dict:
    """One configuration (bf16 LoRA or QLoRA 4-bit), in this process."""
    import logging

    from gpu import (
        GEMMA2_9B,
        TINY,
        cuda_devices,
        device_label,
        flops_per_token,
        peak_gib,
        peak_tflops,
        reset_peaks,
    )

    import gemma_pref as gp

    # the training log says whether (and how) the loss scaler ran
    scaling: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: (  # type: ignore[method-assign]
        scaling.append(record.getMessage()) if "loss scaling" in record.getMessage() else None
    )
    training_log = logging.getLogger("gemma_pref.models._training")
    training_log.addHandler(handler)
    training_log.setLevel(logging.INFO)

    sizes = TINY if args.tiny else GEMMA2_9B
    df = gp.load_arena_sample()
    y = gp.data.labels_from_winner(df)
    rows = df.head(args.rows)
    texts = gp.ArenaTextFormatter().fit_transform(rows)
    quantization = None if args.quantization == "none" else args.quantization
    clf = gp.GemmaPreferenceClassifier(
        args.checkpoint,
        max_length=args.max_length,
        quantization=quantization,
        dtype=args.dtype,  # "auto": the library's choice (float16 on a T4)
        devices=args.device,
        batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        random_state=0,
    )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    lengths = np.array([min(len(t), args.max_length) for t in tok(list(texts))["input_ids"]])
    devices = [args.device]
    cuda = bool(cuda_devices(devices))
    dtype = clf.compute_path()["dtype"]
    if cuda:
        reset_peaks(devices)
    t0 = time.perf_counter()
    clf.fit(texts, y[: len(texts)])  # ends copying the adapter to the CPU: synchronized
    train_s = time.perf_counter() - t0
    train_peak = max(peak_gib(devices).values()) if cuda else None
    clf.load()
    if cuda:
        reset_peaks(devices)
    t0 = time.perf_counter()
    proba = clf.predict_proba(texts)  # numpy on the CPU: synchronized
    infer_s = time.perf_counter() - t0
    infer_peak = max(peak_gib(devices).values()) if cuda else None
    tokens = int(lengths.sum())
    mean_seq = float((lengths**2).sum() / tokens)
    name = device_label(devices)
    peak = peak_tflops(name) if cuda else None
    # training: forward + backward of the frozen base ~ 3x the forward FLOPs
    train_tflops = 3 * flops_per_token(sizes, mean_seq) * tokens / train_s / 1e12
    infer_tflops = flops_per_token(sizes, mean_seq) * tokens / infer_s / 1e12
    return {
        "quantization": args.quantization,
        "dtype": dtype,
        "loss_scaling": scaling,
        "finite": bool(np.isfinite(proba).all()) and all(np.isfinite(clf.loss_curve_)),
        "device": name,
        "rows": len(texts),
        "tokens": tokens,
        "train_s": train_s,
        "train_tokens_per_s": tokens / train_s,
        "train_peak_cuda_gib": train_peak,
        "train_fraction_of_bf16_peak": train_tflops / peak if peak else None,
        "infer_s": infer_s,
        "infer_tokens_per_s": tokens / infer_s,
        "infer_peak_cuda_gib": infer_peak,
        "infer_fraction_of_bf16_peak": infer_tflops / peak if peak else None,
        "losses": clf.loss_curve_[:3],
    }


def gpu_run(args: argparse.Namespace) -> None:
    from gpu import GEMMA2_9B, TINY, build_checkpoint

    sizes = TINY if args.tiny else GEMMA2_9B
    root = Path(args.checkpoint or tempfile.mkdtemp(prefix="gemma2-9b-random-"))
    build_checkpoint(root, sizes)
    results = []
    for quantization in ("none", "4bit") if args.quantization is None else (args.quantization,):
        cmd = [
            sys.executable,
            __file__,
            "--gpu-child",
            "--checkpoint",
            str(root),
            "--device",
            args.device,
            "--quantization",
            quantization,
            "--dtype",
            args.dtype,
            "--rows",
            str(args.rows),
            "--max-length",
            str(args.max_length),
            "--batch-size",
            str(args.batch_size),
        ] + (["--tiny"] if args.tiny else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            results.append({"quantization": quantization, "error": r.stderr.strip()[-800:]})
        else:
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    report = {
        "command": " ".join(["python benchmarks/finetune.py", *sys.argv[1:]]),
        "machine": machine_info("peft", "bitsandbytes"),
        "sizes": "tiny" if args.tiny else "gemma-2-9b",
        "max_length": args.max_length,
        "results": results,
    }
    md = [
        "# Fine-tuning on a GPU (Gemma-2-9b sizes, random weights)",
        "",
        f"Command: `{report['command']}` ({report['machine']['date']}, GPU "
        f"{report['machine']['gpu']}).",
        "",
        "| base | dtype | train tokens/s | train peak GiB | train % 16-bit peak | "
        "infer tokens/s | infer peak GiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            md.append(f"| {r['quantization']} | {args.dtype} | error: {r['error'][:80]} | | | | |")
            continue
        frac = r["train_fraction_of_bf16_peak"]
        md.append(
            f"| {'full' if r['quantization'] == 'none' else 'QLoRA ' + r['quantization']} | "
            f"{r['dtype']} | {r['train_tokens_per_s']:.0f} | {r['train_peak_cuda_gib'] or 0:.1f} | "
            f"{'' if frac is None else f'{100 * frac:.0f}%'} | {r['infer_tokens_per_s']:.0f} | "
            f"{r['infer_peak_cuda_gib'] or 0:.1f} |"
        )
    write_report(
        args.out or RESULTS / ("finetune-gpu-tiny" if args.tiny else "finetune-gpu"),
        report,
        "\n".join(md),
    )
    print("\n".join(md))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (CPU run; default: the default model)")
    p.add_argument("--max-length", type=int, default=None, help="256 on CPU, 1024 with --gpu")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rows", type=int, default=None, help="CPU: cap the training rows; GPU: rows")
    p.add_argument("--gpu", action="store_true", help="the GPU benchmark (Gemma-2-9b sizes)")
    p.add_argument("--tiny", action="store_true", help="with --gpu: tiny sizes, a smoke test")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--checkpoint", default=None, help="reuse a saved random checkpoint")
    p.add_argument("--quantization", default=None, choices=["none", "4bit", "8bit"])
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="with --gpu: dtype (default: auto, the library's choice for the GPU; "
        "float16 trains with loss scaling)",
    )
    p.add_argument("--gpu-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.gpu_child:
        print(json.dumps(gpu_one(args)), flush=True)
    elif args.gpu:
        args.max_length = args.max_length or 1024
        args.rows = args.rows or 256
        gpu_run(args)
    else:
        args.max_length = args.max_length or 256
        cpu_run(args)


if __name__ == "__main__":
    main()
