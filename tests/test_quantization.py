"""4-bit (NF4) and 8-bit loading through bitsandbytes, on CPU."""

from __future__ import annotations

import bitsandbytes as bnb  # a dependency of gemma-pref: missing or broken fails
import numpy as np
import pytest

from gemma_pref import GemmaEmbedder


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_load_and_embed(tiny_gemma, arena_texts, quantization):
    texts = list(arena_texts[:24])
    ref = GemmaEmbedder(tiny_gemma, max_length=128, dtype="float32").transform(texts)
    emb = GemmaEmbedder(
        tiny_gemma, max_length=128, quantization=quantization, devices="cpu", backend="torch"
    )
    X = emb.transform(texts)
    assert X.shape == ref.shape and X.dtype == np.float32 and np.isfinite(X).all()
    model = emb.load()[0]
    proj = model.layers[0].self_attn.q_proj
    if quantization == "4bit":
        assert isinstance(proj, bnb.nn.Linear4bit)
        assert proj.weight.quant_state.quant_type == "nf4"
    else:
        assert isinstance(proj, bnb.nn.Linear8bitLt)
    # quantized vectors stay close to float32 but are not identical
    cos = _cos(X, ref)
    assert cos.min() > 0.9, cos.min()
    assert np.abs(X - ref).max() > 1e-4
