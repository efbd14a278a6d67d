"""GPU throughput of GemmaEmbedder on the Gemma-2-9b architecture (random weights).

Speed does not depend on the values of the weights, and no model hub is reachable,
so the script builds a ``Gemma2Config`` with the published gemma-2-9b sizes
(hidden 3584, 42 layers, 16 heads / 8 KV heads of 256, MLP 14336, vocab 256000),
saves seeded random bfloat16 weights once, and embeds the bundled sample's texts
through the public ``GemmaEmbedder`` path in 16 bits (``--dtype``, default
``auto``: the library's choice, bfloat16 where the GPU has it, float16 on a
T4), 8-bit and 4-bit NF4, with each
attention implementation that the installed transformers offers (eager, sdpa,
flex_attention; flash_attention_2 when importable). It reports tokens/s, rows/s, peak CUDA
memory per device and the fraction of the GPU's dense 16-bit FLOP limit reached.
``--device cuda:0,cuda:0`` runs two replicas on one GPU; ``--oom-headroom-gib``
caps the memory after loading so that batches fail with real out-of-memory errors
and back off.

Run on a machine with a CUDA GPU (one configuration per process, so that peak
memory is clean)::

    python benchmarks/gpu.py                     # all configurations
    python benchmarks/gpu.py --tiny --device cpu # a smoke test of the script itself

Writes ``benchmarks/results/gpu.json`` and ``gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

GEMMA2_9B = dict(
    vocab_size=256000,
    hidden_size=3584,
    intermediate_size=14336,
    num_hidden_layers=42,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=4096,
    max_position_embeddings=8192,
    attn_logit_softcapping=50.0,
    final_logit_softcapping=30.0,
)
TINY = dict(
    GEMMA2_9B,
    vocab_size=2048,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)

# dense 16-bit tensor-core peak, TFLOP/s (vendor data sheets, without sparsity):
# bf16, or fp16 where the GPU has no bf16 (T4)
PEAK_BF16_TFLOPS = {
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "T4": 65.0,
}


def build_checkpoint(path: Path, sizes: dict) -> Path:
    """Save a Gemma2 causal LM with seeded random bf16 weights + the tiny test tokenizer."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from gemma_pref.testing import build_tiny_tokenizer

    if (path / "config.json").is_file():
        return path
    tokenizer = build_tiny_tokenizer(2048)
    config = Gemma2Config(
        **sizes,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Gemma2ForCausalLM._from_config(config, dtype=torch.bfloat16)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def flops_per_token(sizes: dict, seq: float) -> float:
    """Forward FLOPs per token of the base model (matmuls + causal attention)."""
    h, L = sizes["hidden_size"], sizes["num_hidden_layers"]
    q = sizes["num_attention_heads"] * sizes["head_dim"]
    kv = sizes["num_key_value_heads"] * sizes["head_dim"]
    linear = L * (h * q + 2 * h * kv + q * h + 3 * h * sizes["intermediate_size"])
    attention = L * 2 * q * seq / 2  # QK^T and AV, half of the square on average (causal)
    return 2 * linear + 2 * attention


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key.replace(" ", "").lower() in name.replace(" ", "").lower():
            return value
    return None


def cuda_devices(devices: list[str]) -> list[str]:
    """The distinct CUDA devices of a device list (a replica list may repeat one)."""
    return list(dict.fromkeys(d if ":" in d else "cuda:0" for d in devices if d.startswith("cuda")))


def reset_peaks(devices: list[str]) -> None:
    """Synchronize and reset the peak-memory counters of each CUDA device."""
    import torch

    for d in cuda_devices(devices):
        torch.cuda.synchronize(d)
        torch.cuda.reset_peak_memory_stats(d)


def peak_gib(devices: list[str]) -> dict[str, float]:
    """Peak allocated memory (GiB) of each CUDA device since :func:`reset_peaks`."""
    import torch

    return {d: torch.cuda.max_memory_allocated(d) / 2**30 for d in cuda_devices(devices)}


def device_label(devices: list[str]) -> str:
    """The names of the devices a configuration ran on (per device, not device 0's)."""
    import torch

    gpus = cuda_devices(devices)
    if not gpus:
        return "cpu"
    return ", ".join(f"{d}: {torch.cuda.get_device_name(d)}" for d in gpus)


def cap_memory(devices: list[str], headroom_gib: float) -> dict[str, float]:
    """Cap this process's memory on each CUDA device at what it holds now plus
    ``headroom_gib``: a later batch that needs more fails with a real CUDA
    out-of-memory error (the caching allocator refuses it)."""
    import torch

    caps = {}
    for d in cuda_devices(devices):
        total = torch.cuda.get_device_properties(d).total_memory
        cap = torch.cuda.memory_allocated(d) + headroom_gib * 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), d)
        caps[d] = cap / 2**30
    return caps


class CountBackoffs:
    """Count the engine's out-of-memory back-offs (its WARNING records)."""

    def __init__(self) -> None:
        import logging

        self.count = 0
        handler = logging.Handler()
        handler.emit = self._emit  # type: ignore[method-assign]
        logging.getLogger("gemma_pref.embedding._engine").addHandler(handler)

    def _emit(self, record) -> None:
        if record.getMessage().startswith("Out of memory on"):
            self.count += 1


def run_one(args: argparse.Namespace) -> dict:
    """One configuration, in this process."""
    import numpy as np
    import torch

    import gemma_pref as gp

    devices = args.device.split(",")
    df = gp.load_arena_sample()
    texts = gp.ArenaTextFormatter().fit_transform(df.head(args.rows) if args.rows else df)
    emb = gp.GemmaEmbedder(
        args.checkpoint,
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_tokens_per_batch=args.max_tokens_per_batch,
        devices=devices,
        quantization=None if args.quantization == "none" else args.quantization,
        dtype=args.dtype,  # "auto": what the library picks on this GPU
        backend="torch",
        memory_cache=False,
        model_kwargs={"attn_implementation": args.attn},
    )
    path = emb.compute_path()
    emb.transform(texts[:4])  # load + warm up
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    lengths = np.array([min(len(x), args.max_length) for x in tok(list(texts))["input_ids"]])
    cuda = bool(cuda_devices(devices))
    weights = peak_gib(devices) if cuda else {}
    caps = cap_memory(devices, args.oom_headroom_gib) if cuda and args.oom_headroom_gib else {}
    backoffs = CountBackoffs()
    if cuda:
        reset_peaks(devices)
    start = time.perf_counter()
    X = emb.transform(texts)
    if cuda:
        for d in cuda_devices(devices):
            torch.cuda.synchronize(d)
    seconds = time.perf_counter() - start
    tokens = int(lengths.sum())
    sizes = TINY if args.tiny else GEMMA2_9B
    mean_seq = float((lengths**2).sum() / tokens)  # token-weighted sequence length
    achieved = flops_per_token(sizes, mean_seq) * tokens / seconds / 1e12
    name = device_label(devices)
    # one GPU's 16-bit tensor-core peak, times the distinct GPUs used
    peak = peak_tflops(name) * len(cuda_devices(devices)) if cuda and peak_tflops(name) else None
    peaks = peak_gib(devices) if cuda else {}
    return {
        "quantization": args.quantization,
        "dtype": path["dtype"],
        "attn_implementation": args.attn,
        "devices": devices,
        "device": name,
        "rows": len(texts),
        "real_tokens": tokens,
        "seconds": seconds,
        "rows_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
        "peak_cuda_gb": max(peaks.values()) if peaks else None,
        "peak_cuda_gib_per_device": peaks,
        "weights_cuda_gib_per_device": weights,
        "memory_cap_gib_per_device": caps,
        "oom_backoffs": backoffs.count,
        "achieved_tflops": achieved,
        "fraction_of_bf16_peak": achieved / peak if peak else None,
        "finite": bool(np.isfinite(X).all()),
    }


def attention_implementations() -> list[str]:
    # Gemma-2's logit soft-capping rules sdpa out in recent transformers; it is
    # tried anyway, and an unsupported implementation is reported as such.
    impls = ["eager", "sdpa", "flex_attention"]
    try:
        import flash_attn  # noqa: F401

        impls.append("flash_attention_2")
    except ImportError:
        pass
    return impls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="reuse a saved random checkpoint")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: smoke-test the script")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-tokens-per-batch", type=int, default=32768)
    p.add_argument("--quantization", default=None, choices=["none", "8bit", "4bit"])
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="compute dtype (default: auto, the library's choice for the GPU: float16 on a T4)",
    )
    p.add_argument("--attn", default=None)
    p.add_argument(
        "--oom-headroom-gib",
        type=float,
        default=None,
        help="after loading, cap this process's GPU memory at the weights plus this much, "
        "so that large batches fail with a real CUDA out-of-memory error and back off",
    )
    p.add_argument("--out", default=str(RESULTS / "gpu"))
    args = p.parse_args(argv)

    if args.quantization and args.attn and args.checkpoint:  # child: one configuration
        print(json.dumps(run_one(args)), flush=True)
        return None

    sizes = TINY if args.tiny else GEMMA2_9B
    root = Path(args.checkpoint or tempfile.mkdtemp(prefix="gemma2-9b-random-"))
    build_checkpoint(root, sizes)
    rows = []
    for quantization in (
        ["none", "8bit", "4bit"] if args.quantization is None else [args.quantization]
    ):
        for attn in attention_implementations() if args.attn is None else [args.attn]:
            cmd = [
                sys.executable,
                __file__,
                "--checkpoint",
                str(root),
                "--device",
                args.device,
                "--quantization",
                quantization,
                "--dtype",
                args.dtype,
                "--attn",
                attn,
                "--max-length",
                str(args.max_length),
                "--batch-size",
                str(args.batch_size),
                "--max-tokens-per-batch",
                str(args.max_tokens_per_batch),
            ]
            if args.rows:
                cmd += ["--rows", str(args.rows)]
            if args.tiny:
                cmd.append("--tiny")
            r = subprocess.run(
                cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1")
            )
            if r.returncode != 0:
                rows.append(
                    {
                        "quantization": quantization,
                        "attn_implementation": attn,
                        "error": r.stderr.strip().splitlines()[-1].split(". ")[0][:160],
                    }
                )
            else:
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)

    report = {
        "date": date.today().isoformat(),
        "sizes": sizes,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "max_tokens_per_batch": args.max_tokens_per_batch,
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# GPU benchmark, Gemma-2-9b architecture ({report['date']})",
        "",
        "| weights | dtype | attention | device | tokens/s | rows/s | peak CUDA (GiB) "
        "| TFLOP/s | of 16-bit peak |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['quantization']} | {args.dtype} | {r['attn_implementation']} | error: "
                f"{r['error']} | | | | | |"
            )
            continue
        frac = f"{r['fraction_of_bf16_peak']:.1%}" if r["fraction_of_bf16_peak"] else "-"
        mem = f"{r['peak_cuda_gb']:.1f}" if r["peak_cuda_gb"] else "-"
        lines.append(
            f"| {r['quantization']} | {r['dtype']} | {r['attn_implementation']} | {r['device']} | "
            f"{r['tokens_per_s']:.0f} | {r['rows_per_s']:.1f} | {mem} | "
            f"{r['achieved_tflops']:.1f} | {frac} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
