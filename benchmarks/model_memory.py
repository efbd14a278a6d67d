# SPDX-License-Identifier: Apache-2.0
"""Weights' memory of popular checkpoints, from their configurations alone.

For each configuration (the published ``config.json`` values of the model,
written below), the backbone that GemmaEmbedder loads (``AutoModel``: no
language-model head) is built by transformers on the ``meta`` device, so its
parameters are counted exactly without a byte of weights, and the same for
the truncated stack the pairwise recipe's default layers need (hidden states
at 45% to 65% of the depth: only the layers up to the deepest one are built).
The memory is that count times the bytes per parameter of each precision:
bfloat16 / float16 2, int8 1 (bitsandbytes LLM.int8, its norms and embedding
kept in 16 bits are ignored), NF4 0.5 plus 1/64 byte of scales per parameter.
Activations, the CUDA context (about 0.5 GB) and batches come on top: this is
arithmetic, not a measurement.

    python benchmarks/model_memory.py
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import RESULTS, machine_info, write_report

#: Published configurations (the fields that decide the parameter count).
CONFIGS: dict[str, dict[str, Any]] = {
    "google/gemma-3-270m": dict(
        model_type="gemma3_text", hidden_size=640, num_hidden_layers=18, intermediate_size=2048,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
    ),
    "google/gemma-2-2b-it": dict(
        model_type="gemma2", hidden_size=2304, num_hidden_layers=26, intermediate_size=9216,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=256000,
    ),
    "google/gemma-2-9b-it": dict(
        model_type="gemma2", hidden_size=3584, num_hidden_layers=42, intermediate_size=14336,
        num_attention_heads=16, num_key_value_heads=8, head_dim=256, vocab_size=256000,
    ),
    "Qwen/Qwen2.5-0.5B-Instruct": dict(
        model_type="qwen2", hidden_size=896, num_hidden_layers=24, intermediate_size=4864,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
    ),
    "Qwen/Qwen2.5-7B-Instruct": dict(
        model_type="qwen2", hidden_size=3584, num_hidden_layers=28, intermediate_size=18944,
        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
    ),
    "Qwen/Qwen2.5-14B-Instruct": dict(
        model_type="qwen2", hidden_size=5120, num_hidden_layers=48, intermediate_size=13824,
        num_attention_heads=40, num_key_value_heads=8, vocab_size=152064,
    ),
    "Qwen/Qwen3-0.6B": dict(
        model_type="qwen3", hidden_size=1024, num_hidden_layers=28, intermediate_size=3072,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936,
    ),
    "Qwen/Qwen3-8B": dict(
        model_type="qwen3", hidden_size=4096, num_hidden_layers=36, intermediate_size=12288,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
    ),
    "meta-llama/Llama-3.2-1B-Instruct": dict(
        model_type="llama", hidden_size=2048, num_hidden_layers=16, intermediate_size=8192,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
    ),
    "meta-llama/Llama-3.1-8B-Instruct": dict(
        model_type="llama", hidden_size=4096, num_hidden_layers=32, intermediate_size=14336,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": dict(
        model_type="mistral", hidden_size=4096, num_hidden_layers=32, intermediate_size=14336,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=32768,
    ),
}  # fmt: skip

#: Bytes per parameter of each precision (see the module docstring).
PRECISIONS = {"bfloat16": 2.0, "int8": 1.0, "nf4": 0.5 + 1 / 64}
GIB = 1024**3


def backbone_parameters(fields: dict[str, Any], layers: int | None = None) -> int:
    """Parameters of the ``AutoModel`` backbone, built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModel

    fields = dict(fields)
    model_type = fields.pop("model_type")
    if layers is not None:
        fields["num_hidden_layers"] = layers
    config = AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def default_layers(n_layers: int) -> tuple[list[int], int]:
    """The hidden states the pairwise recipe pools on ``n_layers`` layers, and
    how many decoder layers run (gemma_pref's own rule)."""
    from gemma_pref.embedding._layers import layer_plan
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    layers, run = layer_plan(PAIRWISE_DEFAULTS["layer"], n_layers, "the model")
    return list(layers or [n_layers]), int(run or n_layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="model-memory", help="name under benchmarks/results")
    args = parser.parse_args()
    rows = []
    for name, fields in CONFIGS.items():
        n = fields["num_hidden_layers"]
        states, run = default_layers(n)
        full = backbone_parameters(fields)
        cut = backbone_parameters(fields, run)
        rows.append(
            {
                "model": name,
                "layers": n,
                "default_states": states,
                "default_layers_run": run,
                "parameters": full,
                "parameters_default": cut,
                **{f"gib_{p}": full * b / GIB for p, b in PRECISIONS.items()},
                **{f"gib_{p}_default": cut * b / GIB for p, b in PRECISIONS.items()},
            }
        )
        print(f"{name}: {full / 1e9:.2f}B parameters, default runs {run}/{n} layers")
    lines = [
        "# Weights' memory from the configurations (arithmetic, not a measurement)",
        "",
        "Backbone parameters counted by transformers on the meta device; GiB = parameters x "
        "bytes per parameter (bfloat16 2, int8 1, NF4 0.5 + scales). Activations, batches "
        "and the CUDA context come on top.",
        "",
        "| model | layers | default pools states (layers run) | parameters | bf16 all / default "
        "GiB | int8 all / default GiB | NF4 all / default GiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        states = f"{r['default_states'][0]}-{r['default_states'][-1]}"
        cells = [
            f"{r[f'gib_{p}']:.2f} / {r[f'gib_{p}_default']:.2f}"
            for p in ("bfloat16", "int8", "nf4")
        ]
        lines.append(
            f"| {r['model']} | {r['layers']} | {states} ({r['default_layers_run']}) | "
            f"{r['parameters'] / 1e9:.2f}B | " + " | ".join(cells) + " |"
        )
    write_report(
        RESULTS / args.out,
        {"rows": rows, "machine": machine_info("transformers")},
        "\n".join(lines) + "\n",
    )


if __name__ == "__main__":
    main()
