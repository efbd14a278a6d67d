"""Embedding speed: the reference notebook's loop vs sentence-transformers vs GemmaEmbedder.

All three run in one process, on the same checkpoint and the same formatted rows:

(a) ``seed``: the reference notebook's loop, faithfully: ``AutoModelForCausalLM`` with
    ``output_hidden_states=True`` (so the vocabulary-sized logits are computed and
    thrown away), every row padded to ``max_length``, batches of 2,
    ``gc.collect()`` + ``torch.cuda.empty_cache()`` per batch, and a mean over all
    positions, padding included. Its dtype is what ``from_pretrained`` gives by
    default (the checkpoint's, bfloat16 for the default model) unless
    ``--seed-dtype`` says otherwise.
(b) ``sentence-transformers``: the peer a user would pick instead, a ``Transformer``
    module on the same checkpoint plus mean ``Pooling``, in bfloat16 (its best dtype
    on this CPU), default batch size 32 (it sorts by length too).
(c) ``gemma-pref``: ``GemmaEmbedder`` with its defaults (``dtype="auto"``,
    batch size 8, length-sorted dynamic padding, masked mean).

Reported per method: rows/s, real tokens/s, padding efficiency (real tokens /
processed tokens), peak RSS while it ran (sampled), peak CUDA memory on GPU, and
the max abs difference / min cosine between methods where they should agree.
An fp32 ``GemmaEmbedder`` on a subset is the accuracy reference.

Run::

    python benchmarks/embedding.py                       # default model, 715 rows, 1024 tokens
    python benchmarks/embedding.py --rows 64 --max-length 256   # a quick look
    python benchmarks/embedding.py --seed-dtype default,float32 \
        --out benchmarks/results/embedding-seed-dtypes-715   # both seed dtypes, ~2 h

Needs ``pip install -e ".[bench]"`` (sentence-transformers).

Writes ``benchmarks/results/embedding.json`` and ``embedding.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
from _common import RESULTS, PeakRSS, cpu_label, machine_info


def cuda_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak() -> int | None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    return None


def seed_loop(model_dir, texts, max_length, device, dtype):
    """The reference notebook's embedding loop (get_embeddings), on one device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    kwargs = {"local_files_only": True}
    if dtype != "default":
        kwargs["dtype"] = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).to(device).eval()
    tokens = tokenizer(
        list(texts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    input_ids, attention_mask = tokens["input_ids"], tokens["attention_mask"]

    def run(n=None):
        rows = len(texts) if n is None else n
        embed_list = []
        for start in range(0, rows, 2):
            end = min(start + 2, rows)
            batch_ids = input_ids[start:end].to(device)
            batch_mask = attention_mask[start:end].to(device)
            gc.collect()
            torch.cuda.empty_cache()
            with torch.no_grad():
                outputs = model(
                    input_ids=batch_ids,
                    attention_mask=batch_mask,
                    output_hidden_states=True,
                )
                embed = outputs.hidden_states[-1]
                embed_list.append(torch.mean(embed, dim=1).float().cpu())
                torch.cuda.empty_cache()
        return torch.cat(embed_list, dim=0).numpy()

    real = int(attention_mask.sum())
    return run, real, input_ids.numel(), str(model.dtype)


def _native_bf16() -> bool:
    from gemma_pref._loading import cpu_supports_bf16

    return cpu_supports_bf16()


def st_loop(model_dir, texts, max_length, device):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    # its best configuration on this machine: bfloat16 where the device runs it
    # natively, else float32 (emulated bf16 is several times slower on CPUs
    # without it). Its ONNX and OpenVINO backends need optimum, whose releases
    # pin transformers below the version gemma-pref needs.
    native = device.startswith("cuda") or _native_bf16()
    dtype = torch.bfloat16 if native else torch.float32
    transformer = Transformer(
        str(model_dir),
        max_seq_length=max_length,
        model_kwargs={"dtype": dtype, "local_files_only": True},
        processor_kwargs={"local_files_only": True},
        config_kwargs={"local_files_only": True},
    )
    dim = (
        transformer.get_embedding_dimension()
        if hasattr(transformer, "get_embedding_dimension")
        else transformer.get_word_embedding_dimension()
    )
    model = SentenceTransformer(modules=[transformer, Pooling(dim, "mean")], device=device)

    def run(n=None):
        rows = list(texts) if n is None else list(texts[:n])
        return model.encode(rows, batch_size=32, convert_to_numpy=True, show_progress_bar=False)

    return run, str(dtype).replace("torch.", "")


def lengths_of(model_dir, texts, max_length):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    ids = tok(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return np.array([len(x) for x in ids])


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main(argv=None):
    import torch

    import gemma_pref as gp
    from gemma_pref.batching import padding_efficiency, plan_batches

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint dir (default: Gemma 3 270M)")
    p.add_argument("--rows", type=int, default=None, help="first N rows (default: all)")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--seed-dtype",
        default="default",
        help="dtype of the seed loop: 'default' (from_pretrained's) or a torch "
        "dtype; several, comma-separated, run one seed loop each",
    )
    p.add_argument(
        "--reference-rows",
        type=int,
        default=64,
        help="rows embedded in float32 as the accuracy reference",
    )
    p.add_argument("--skip", nargs="*", default=[], choices=["seed", "st"])
    p.add_argument("--out", default=str(RESULTS / "embedding"))
    args = p.parse_args(argv)

    df = gp.load_arena_sample()
    if args.rows:
        df = df.head(args.rows)
    texts = gp.ArenaTextFormatter().fit_transform(df)
    model_dir = gp.GemmaEmbedder(args.model)._model_dir()
    lengths = lengths_of(model_dir, texts, args.max_length)
    real_tokens = int(lengths.sum())
    results = {}
    outputs = {}

    def record(name, fn, processed, dtype, warm):
        warm()  # first-call costs (kernel selection, allocations) out of the timing
        gc.collect()
        cuda_reset()
        with PeakRSS() as rss:
            start = time.perf_counter()
            X = fn()
            seconds = time.perf_counter() - start
        outputs[name] = np.asarray(X, dtype=np.float32)
        results[name] = {
            "seconds": seconds,
            "rows_per_s": len(texts) / seconds,
            "real_tokens_per_s": real_tokens / seconds,
            "padding_efficiency": real_tokens / processed,
            "peak_rss_gb": rss.peak / 2**30,
            "peak_cuda_gb": (cuda_peak() or 0) / 2**30 or None,
            "dtype": dtype,
        }
        print(
            f"{name}: {seconds:.1f} s, {len(texts) / seconds:.2f} rows/s, "
            f"{real_tokens / seconds:.0f} real tokens/s",
            flush=True,
        )

    # (c) gemma-pref, defaults
    emb = gp.GemmaEmbedder(
        args.model, max_length=args.max_length, devices=args.device, memory_cache=False
    )
    batches = plan_batches(lengths, batch_size=emb.batch_size)
    path = emb.compute_path()
    dtype = f"{path['backend']} {path['dtype']}"
    load_start = time.perf_counter()
    emb.load()  # a first ONNX export is timed here, not in the embedding
    load_seconds = time.perf_counter() - load_start
    record(
        "gemma-pref",
        lambda: emb.transform(texts),
        real_tokens / padding_efficiency(lengths, batches),
        dtype,
        lambda: emb.transform(texts[:8]),
    )
    emb = None  # free the model before the next method loads its own

    if "st" not in args.skip:
        run, st_dtype = st_loop(model_dir, texts, args.max_length, args.device)
        record(
            "sentence-transformers",
            run,
            real_tokens / padding_efficiency(lengths, plan_batches(lengths, batch_size=32)),
            st_dtype,
            lambda: run(8),
        )
        del run
    if "seed" not in args.skip:
        seed_dtypes = args.seed_dtype.split(",")
        for requested in seed_dtypes:
            run, _, processed, seed_dtype = seed_loop(
                model_dir, texts, args.max_length, args.device, requested
            )
            seed_dtype = seed_dtype.replace("torch.", "")
            name = "seed loop" if len(seed_dtypes) == 1 else f"seed loop ({seed_dtype})"
            record(name, run, processed, seed_dtype, lambda: run(2))
            del run
            gc.collect()
    gc.collect()

    # accuracy: fp32 reference on a subset
    n_ref = min(args.reference_rows, len(texts))
    ref = gp.GemmaEmbedder(
        args.model,
        max_length=args.max_length,
        devices=args.device,
        dtype="float32",
        backend="torch",
        memory_cache=False,
    ).transform(texts[:n_ref])
    agree = {
        "gemma-pref vs float32 reference (min cosine)": float(
            cosine(outputs["gemma-pref"][:n_ref], ref).min()
        ),
    }
    if "sentence-transformers" in outputs:
        d = np.abs(outputs["gemma-pref"] - outputs["sentence-transformers"])
        agree["gemma-pref vs sentence-transformers (max abs diff)"] = float(d.max())
        agree["gemma-pref vs sentence-transformers (min cosine)"] = float(
            cosine(outputs["gemma-pref"], outputs["sentence-transformers"]).min()
        )
    speedups = {}
    base = results["gemma-pref"]["rows_per_s"]
    for name in results:
        if name != "gemma-pref":
            speedups[f"gemma-pref / {name}"] = base / results[name]["rows_per_s"]

    report = {
        "date": date.today().isoformat(),
        "machine": f"{cpu_label()}, torch {torch.__version__}",
        "machine_info": machine_info("sentence-transformers", "onnxruntime"),
        "gemma_pref_compute_path": path,
        "gemma_pref_load_seconds": load_seconds,
        "device": args.device,
        "model": str(model_dir),
        "rows": len(texts),
        "max_length": args.max_length,
        "real_tokens": real_tokens,
        "results": results,
        "speedups": speedups,
        "agreement": agree,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Embedding benchmark ({report['date']})",
        "",
        f"{report['rows']} rows of the bundled sample, max_length {args.max_length}, "
        f"{real_tokens} real tokens; model `{Path(report['model']).name}`; "
        f"device {args.device}; {report['machine']}.",
        "",
        "| method | dtype | seconds | rows/s | real tokens/s | padding efficiency "
        "| peak RSS (GiB) | peak CUDA (GiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        cuda = f"{r['peak_cuda_gb']:.2f}" if r["peak_cuda_gb"] else "-"
        lines.append(
            f"| {name} | {r['dtype']} | {r['seconds']:.1f} | {r['rows_per_s']:.2f} | "
            f"{r['real_tokens_per_s']:.0f} | {r['padding_efficiency']:.3f} | "
            f"{r['peak_rss_gb']:.2f} | {cuda} |"
        )
    lines += [
        "",
        *(f"- {k}: {v:.2f}x" for k, v in speedups.items()),
        *(f"- {k}: {v:.6g}" for k, v in agree.items()),
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
