"""Embedding time of a middle layer vs the last: ``GemmaEmbedder(layer=...)``.

One process, one checkpoint (default: Gemma 3 270M, 18 decoder layers), the
same pair texts (``ArenaTextFormatter(layout="pair")``: the prompt with each
answer, two texts per row of the bundled sample) at the same ``max_length``,
the embedder's defaults otherwise (``dtype="auto"``, ``backend="auto"``,
batch size 8, length-sorted dynamic padding). For each ``layer`` it records
the model load, the parameters the loaded replica holds (the truncated stack
never builds the dropped layers), and the embedding time of every text, the
configurations timed in turn, ``--repeats`` times (the median is reported;
the machine may be shared). A middle layer's vectors are checked against the
untruncated model's ``hidden_states`` on a few texts.

Run::

    python benchmarks/layers.py                    # 100 rows = 200 texts, 256 tokens
    python benchmarks/layers.py --layers=-1,9,6,8-12 --rows 50

Writes ``benchmarks/results/layers.json`` and ``layers.md``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from _common import RESULTS, cpu_label, machine_info, write_report


def _label(layer) -> str:
    if isinstance(layer, range):
        return f"range({layer.start}, {layer.stop})"
    return str(layer)


def _check_against_full_model(model_dir, texts, layer, max_length, vectors):
    """Max abs difference and min cosine between ``vectors`` (the truncated
    stack's, for ``texts``) and the full model's ``hidden_states`` pooled."""
    import torch

    import gemma_pref as gp

    full = gp.GemmaEmbedder(model_dir, max_length=max_length, memory_cache=False)
    (model,) = full.load()
    if not isinstance(model, torch.nn.Module):  # an ONNX Runtime session: no hidden states
        return None
    tok = full._lazy_runtime[1].tokenizer
    tok.padding_side = "right"  # as the embedder pads
    enc = tok(
        list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        states = model(**enc, output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].unsqueeze(-1).to(torch.float32)
    indices = list(layer) if isinstance(layer, range | list | tuple) else [layer]
    pooled = [(states[i].float() * mask).sum(1) / mask.sum(1) for i in indices]
    ref = torch.stack(pooled).mean(0).numpy()
    cos = (ref * vectors).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(vectors, axis=1)
    full.free()
    return {"max_abs_diff": float(np.abs(ref - vectors).max()), "min_cosine": float(cos.min())}


def main(argv=None):
    import torch

    import gemma_pref as gp
    from gemma_pref.cli import parse_layer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint dir (default: Gemma 3 270M)")
    p.add_argument("--rows", type=int, default=100, help="sample rows (two texts each)")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument(
        "--layers",
        default="-1;9;8-12",
        help="layer values, ';'-separated, each as --layer takes it (default: -1;9;8-12)",
    )
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--check-texts", type=int, default=8)
    p.add_argument("--out", default=str(RESULTS / "layers"))
    args = p.parse_args(argv)

    layers = [parse_layer(v) for v in args.layers.split(";")]
    machine = machine_info("onnxruntime")  # the load average before the runs
    df = gp.load_arena_sample().head(args.rows)
    pair = np.asarray(gp.ArenaTextFormatter(layout="pair").fit_transform(df), dtype=object)
    texts = [str(t) for t in pair.reshape(-1)]
    model_dir = gp.GemmaEmbedder(args.model)._model_dir()
    n_layers = gp.GemmaEmbedder(args.model)._num_hidden_layers

    embedders, loads = {}, {}
    for layer in layers:
        emb = gp.GemmaEmbedder(args.model, max_length=args.max_length, layer=layer)
        emb.set_params(memory_cache=False, show_progress_bar=False)
        start = time.perf_counter()
        (model,) = emb.load()
        seconds = time.perf_counter() - start
        params = (
            sum(t.numel() for t in model.parameters())
            if isinstance(model, torch.nn.Module)
            else None
        )
        emb.transform(texts[:8])  # first-call costs out of the timing
        embedders[_label(layer)] = emb
        path = emb.compute_path()
        loads[_label(layer)] = {
            "load_seconds": seconds,
            "parameters": params,
            "compute_path": path,
        }
        print(f"layer={_label(layer)}: loaded in {seconds:.1f} s, {params} parameters", flush=True)

    times: dict[str, list[float]] = {k: [] for k in embedders}
    cpu_times: dict[str, list[float]] = {k: [] for k in embedders}
    vectors = {}
    for r in range(args.repeats):
        for name, emb in embedders.items():
            gc.collect()
            start, cpu_start = time.perf_counter(), time.process_time()
            vectors[name] = emb.transform(texts)
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
            print(
                f"  repeat {r + 1}, layer={name}: {times[name][-1]:.1f} s "
                f"({cpu_times[name][-1]:.1f} s of CPU)",
                flush=True,
            )
    for emb in embedders.values():
        emb.free()
    gc.collect()

    base = _label(layers[0])
    results = {}
    for layer in layers:
        name = _label(layer)
        median = statistics.median(times[name])
        cpu_median = statistics.median(cpu_times[name])
        check = None
        if name != "-1" and args.check_texts:
            n = min(args.check_texts, len(texts))
            check = _check_against_full_model(
                args.model, texts[:n], layer, args.max_length, vectors[name][:n]
            )
        results[name] = {
            **loads[name],
            "seconds": times[name],
            "median_seconds": median,
            "texts_per_s": len(texts) / median,
            "time_vs_first": median / statistics.median(times[base]),
            "cpu_seconds": cpu_times[name],
            "median_cpu_seconds": cpu_median,
            "cpu_time_vs_first": cpu_median / statistics.median(cpu_times[base]),
            "check_vs_full_model": check,
        }

    report = {
        "date": date.today().isoformat(),
        "machine": f"{cpu_label()}, torch {torch.__version__}",
        "machine_info": machine,
        "model": str(model_dir),
        "num_hidden_layers": n_layers,
        "texts": len(texts),
        "max_length": args.max_length,
        "repeats": args.repeats,
        "command": " ".join(
            ["python", "benchmarks/layers.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "results": results,
    }
    lines = [
        f"# Middle layers ({report['date']})",
        "",
        f"{len(texts)} pair texts ({args.rows} rows of the bundled sample), max_length "
        f"{args.max_length}; model `{Path(report['model']).name}` ({n_layers} decoder "
        f"layers); {report['machine']}; median of {args.repeats} timed run(s) each, in turn; "
        f"load average at start {report['machine_info']['load_average_at_start']}: on a "
        "shared machine the CPU time (all threads of this process) is the steadier ratio.",
        "",
        "| layer | compute | decoder layers run | parameters loaded | load (s) "
        f"| embed (s) | texts/s | time vs layer={base} | CPU time (s) | CPU time vs "
        f"layer={base} | vs full model's hidden_states |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        path = r["compute_path"]
        run = n_layers if path["decoder_layers"] == "all" else path["decoder_layers"]
        params = f"{r['parameters'] / 1e6:.1f} M" if r["parameters"] else "-"
        check = r["check_vs_full_model"]
        agree = (
            f"max abs diff {check['max_abs_diff']:.3g}, min cosine {check['min_cosine']:.6f}"
            if check
            else "-"
        )
        lines.append(
            f"| {name} | {path['backend']} {path['dtype']} | {run} | {params} "
            f"| {r['load_seconds']:.1f} | {r['median_seconds']:.1f} | {r['texts_per_s']:.2f} "
            f"| {r['time_vs_first']:.2f} | {r['median_cpu_seconds']:.1f} "
            f"| {r['cpu_time_vs_first']:.2f} | {agree} |"
        )
    lines.append("")
    write_report(args.out, report, "\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
