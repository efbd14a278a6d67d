"""Every tested decoder family, called the way Hugging Face users call it.

Gemma 2, Gemma 3, Qwen2 (as Qwen2.5), Qwen3, Llama (as Llama 3) and Mistral,
each a tiny random checkpoint built here with its own tokenizer (special
tokens, BOS rule, pad token or none) and its instruction-tuned chat template
(gemma_pref.testing.make_tiny_checkpoint). For each: the texts use the
family's own chat format (Gemma's stay byte-identical), every hidden-state
index pools the model's own ``hidden_states[i]``, the truncated forward keeps
only the layers it needs, ONNX Runtime gives PyTorch's vectors, the LoRA
classifier trains in float32 and under float16 autocast, and the default
recipe fits, predicts and round-trips through both persistence formats.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import gemma_pref as gp
from gemma_pref.testing import TINY_FAMILIES, make_tiny_checkpoint
from gemma_pref.text.formatting import PAIR_TEMPLATE, SEED_TEMPLATE

FAMILIES = list(TINY_FAMILIES)
#: What each family's own chat format shows around a user turn.
MARKERS = {
    "gemma2": "<start_of_turn>user\n",
    "gemma3": "<start_of_turn>user\n",
    "qwen2": "<|im_start|>user\n",
    "qwen3": "<|im_start|>user\n",
    "llama": "<|start_header_id|>user<|end_header_id|>\n\n",
    "mistral": "[INST] ",
}
DEPTH = 3


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {
        family: make_tiny_checkpoint(
            root / family, family, hidden_size=32, num_hidden_layers=DEPTH, vocab_size=512
        )
        for family in FAMILIES
    }


@pytest.fixture(scope="module")
def rows(arena):
    return arena.iloc[:40]


def _embedder(path, **params):
    defaults = {"max_length": 48, "dtype": "float32", "backend": "torch", "devices": "cpu"}
    return gp.GemmaEmbedder(path, **{**defaults, **params})


@pytest.mark.parametrize("family", FAMILIES)
def test_texts_use_the_familys_own_chat_format(checkpoints, arena, rows, family):
    path = checkpoints[family]
    multi = arena[arena["prompt"].map(json.loads).map(len) > 1].head(3)  # several turns
    assert len(multi) == 3
    auto = gp.ArenaTextFormatter(layout="pair", turns="all", template="auto", tokenizer=str(path))
    pair = auto.fit_transform(multi)
    if family.startswith("gemma"):  # byte-identical to Gemma's own templates
        gemma = gp.ArenaTextFormatter(layout="pair", turns="all")
        np.testing.assert_array_equal(pair, gemma.transform(multi))
        assert auto.template_in_use() == "gemma"
        joint = gp.ArenaTextFormatter(template="auto", tokenizer=str(path)).fit_transform(multi)
        assert joint[0].startswith(SEED_TEMPLATE[:20])
        assert PAIR_TEMPLATE.startswith(pair[0, 0][:16])
        return
    assert "chat template" in auto.template_in_use()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    for text in pair.ravel():
        # each earlier prompt turn is a user turn of its own, unlabelled
        assert text.count(MARKERS[family]) >= 2 and "[Turn 1]" not in text
        assert "<start_of_turn>" not in text
        ids = tokenizer(text)["input_ids"]
        if tokenizer.bos_token_id is not None:  # one BOS, the tokenizer's own
            assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
    # the token budget still keeps both answers under the chat template
    budget = gp.ArenaTextFormatter(
        layout="pair", template="chat", tokenizer=str(path), max_tokens=64, turns="all"
    )
    for text in budget.fit_transform(rows).ravel():
        assert len(tokenizer(text)["input_ids"]) <= 64
    joint = gp.ArenaTextFormatter(template="chat", tokenizer=str(path)).fit_transform(multi)
    assert all(t.count(MARKERS[family]) == 1 and "Model B:" in t for t in joint)


def _own_states(path, texts, max_length):
    """The model's own hidden_states, mean-pooled over real tokens (float32)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).to(torch.float32)
    return [((h * mask).sum(1) / mask.sum(1)).numpy() for h in out.hidden_states]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_layer_is_the_models_own_hidden_state_and_the_forward_stops_there(
    checkpoints, arena_texts, family
):
    path = checkpoints[family]
    texts = list(arena_texts[:5]) + ["x"]
    states = _own_states(path, texts, 48)
    assert len(states) == DEPTH + 1
    for layer in range(DEPTH + 1):
        emb = _embedder(path, layer=layer)
        np.testing.assert_allclose(
            emb.fit_transform(texts), states[layer], atol=3e-5, err_msg=f"layer={layer}"
        )
        (model,) = emb.load()
        assert len(model.layers) == (DEPTH if layer == DEPTH else max(1, layer))


@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_gives_the_vectors_of_pytorch(checkpoints, arena_texts, family):
    path = checkpoints[family]
    texts = list(arena_texts[:6])
    torch_vecs = _embedder(path, layer=1).fit_transform(texts)
    ort = _embedder(path, layer=1, backend="onnxruntime")
    np.testing.assert_allclose(ort.fit_transform(texts), torch_vecs, rtol=1e-3, atol=1e-4)
    (replica,) = ort.load()
    assert type(replica).__name__ == "OnnxReplica"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_lora_classifier_trains(checkpoints, family, dtype):
    from test_finetune import label_word_task

    X, y = label_word_task(24, 0)
    clf = gp.GemmaPreferenceClassifier(
        checkpoints[family],
        max_length=24,
        lora_r=4,
        num_epochs=1,
        batch_size=8,
        gradient_accumulation_steps=1,
        dtype=dtype,
        random_state=0,
        devices="cpu",
    ).fit(X, y)
    assert np.isfinite(clf.loss_curve_).all()
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_default_recipe_end_to_end_and_persistence(checkpoints, rows, family, tmp_path):
    path = checkpoints[family]
    pipe = gp.make_preference_pipeline(
        str(path), max_length=48, dtype="float32", backend="torch", cache_dir=None
    )
    y = gp.data.labels_from_winner(rows)
    proba = pipe.fit(rows, y).predict_proba(rows)
    assert proba.shape == (len(rows), 3) and np.allclose(proba.sum(axis=1), 1)
    used = pipe.formatter_.template_in_use()
    assert (used == "gemma") == family.startswith("gemma"), used
    again = gp.load(gp.save(pipe, tmp_path / "pipe.joblib"))
    np.testing.assert_allclose(again.predict_proba(rows), proba, atol=1e-6)
    safe = gp.load_safe(gp.save_safe(pipe, tmp_path / "pipe"))
    np.testing.assert_allclose(safe.predict_proba(rows), proba, atol=1e-6)


@pytest.mark.parametrize("family", ["gemma3", "llama"])
def test_the_compute_line_says_which_template_ran(checkpoints, tmp_path, capsys, family):
    from gemma_pref.cli import main

    out = tmp_path / "emb.npy"
    args = ["-q", "embed", "--model", str(checkpoints[family]), "--max-length", "32"]
    assert (
        main([*args, "--dtype", "float32", "--backend", "torch", "--no-cache", "-o", str(out)]) == 0
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    expected = (
        "template: gemma" if family == "gemma3" else "template: the checkpoint's chat template"
    )
    assert expected in line, line
