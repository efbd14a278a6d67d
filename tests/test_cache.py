from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from gemma_pref import GemmaEmbedder
from gemma_pref.embedding.cache import (
    CacheIntegrityWarning,
    CacheWriteWarning,
    DiskCache,
    MemoryCache,
    _encode,
    verify_disk_cache,
)

EMBEDDER_DEFAULTS = {"max_length": 96}


def test_memory_cache_embeds_each_distinct_text_once(
    make_embedder, tiny_gemma, arena_texts, forward_rows
):
    texts = list(arena_texts[:20])
    first = make_embedder().transform(texts + texts[:5])  # duplicates in one call
    assert sum(forward_rows) == 20
    again = make_embedder().transform(texts[::-1])  # a new instance (a clone)
    assert sum(forward_rows) == 20
    np.testing.assert_array_equal(again, first[:20][::-1])


def test_cache_key_covers_settings(make_embedder, tiny_gemma, forward_rows):
    texts = ["alpha beta", "gamma delta"]
    make_embedder().transform(texts)
    n = sum(forward_rows)
    for change in ({"pooling": "last"}, {"max_length": 95}, {"padding": "max_length"}):
        make_embedder(**change).transform(texts)
        assert sum(forward_rows) > n, change
        n = sum(forward_rows)
    GemmaEmbedder(tiny_gemma, max_length=96, dtype="bfloat16").transform(texts)
    assert sum(forward_rows) > n


def test_cache_key_covers_the_layer(make_embedder, tiny_gemma, tmp_path, forward_rows):
    texts = ["alpha beta", "gamma delta"]
    base = {"cache_dir": tmp_path, "memory_cache": False}
    last = make_embedder(**base).transform(texts)
    # the key of the last layer is the one it had before the parameter existed
    import torch

    settings = make_embedder(**base)._vector_settings(torch.float32, "torch")
    assert set(settings) == {
        "dtype",
        "pooling",
        "max_length",
        "padding",
        "model_kwargs",
        "tokenizer_kwargs",
    }
    n = sum(forward_rows)
    # the tiny model has 2 decoder layers: 2 and -1 name the same state, as
    # do -3, 0 and [0]; each other choice has entries of its own
    for layer, fresh in (
        (2, False),
        ([-1], False),
        (1, True),
        (-2, False),
        (0, True),
        ([0], False),
        (-3, False),
        ([0, 1], True),
        (range(0, 2), False),
    ):
        vecs = make_embedder(**base, layer=layer).transform(texts)
        assert sum(forward_rows) == n + (2 if fresh else 0), layer
        n = sum(forward_rows)
        if layer in (2, [-1]):
            np.testing.assert_array_equal(vecs, last)
        else:
            assert not np.allclose(vecs, last, atol=1e-3), layer
    assert len(list(tmp_path.glob("*/meta.json"))) == 4
    metas = [json.loads(m.read_text()) for m in tmp_path.glob("*/meta.json")]
    assert sorted(str(m.get("layers")) for m in metas) == ["None", "[0, 1]", "[0]", "[1]"]


def test_disk_cache_round_trip_and_corruption(make_embedder, tiny_gemma, tmp_path, forward_rows):
    texts = ["first text", "second text", "third"]
    ref = make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(forward_rows) == 3
    entries = sorted(tmp_path.rglob("*.emb"))
    assert len(entries) == 3 and len(list(tmp_path.glob("*/meta.json"))) == 1
    again = make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(forward_rows) == 3
    np.testing.assert_array_equal(again, ref)
    # truncate one entry: detected, warned about, recomputed
    entries[0].write_bytes(entries[0].read_bytes()[:50])
    with pytest.warns(CacheIntegrityWarning, match="truncated or corrupt"):
        fixed = make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(forward_rows) == 4
    np.testing.assert_allclose(fixed, ref, atol=1e-6)
    # flip one payload byte: checksum catches it
    blob = bytearray(entries[1].read_bytes())
    blob[-1] ^= 0xFF
    entries[1].write_bytes(bytes(blob))
    with pytest.warns(CacheIntegrityWarning):
        make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(forward_rows) == 5


def test_memory_cache_is_bounded():
    cache = MemoryCache(max_bytes=3 * 16)
    for i in range(5):
        cache.put(str(i), np.full(4, i, dtype=np.float32))
    assert len(cache) == 3 and cache.nbytes == 48
    assert cache.get("0") is None and cache.get("4") is not None


@pytest.fixture
def own_gemma(tiny_gemma, tmp_path):
    """A private copy of the tiny checkpoint, free to be re-saved in place."""
    return shutil.copytree(tiny_gemma, tmp_path / "own-gemma")


@pytest.fixture
def embed_fresh(make_embedder):
    """``embed_fresh(path, texts, **params)``: vectors computed from scratch, with no
    memory cache and no disk cache."""

    def compute(path, texts, **kw):
        return make_embedder(path=path, memory_cache=False, **kw).transform(texts)

    return compute


def _resave_weights(path, scale):
    """Scale one layer and save the checkpoint again, in place."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    with torch.no_grad():
        for p in model.model.layers[0].mlp.parameters():
            p.mul_(scale)
    model.save_pretrained(path, safe_serialization=True)


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config, indent=2))


@pytest.mark.parametrize("memory", [False, True], ids=["disk", "memory"])
def test_no_stale_vectors_when_the_model_changes_in_place(
    embed_fresh, make_embedder, own_gemma, tmp_path, forward_rows, memory
):
    texts = ["alpha beta gamma", "a second, longer text to embed"]
    cache = tmp_path / "cache"
    kw = {"cache_dir": cache, "memory_cache": memory}
    emb = make_embedder(path=own_gemma, **kw)  # one instance across the changes, as in a notebook
    before = emb.transform(texts)
    n = sum(forward_rows)

    _resave_weights(own_gemma, scale=3.0)  # new weights, same path
    after_weights = emb.transform(texts)
    assert sum(forward_rows) > n, "re-saved weights were served from the cache"
    n = sum(forward_rows)
    fresh = embed_fresh(own_gemma, texts)
    n_fresh = sum(forward_rows) - n
    np.testing.assert_allclose(after_weights, fresh, atol=1e-5)
    assert not np.allclose(after_weights, before, atol=1e-3)
    n += n_fresh

    _edit_config(own_gemma, rms_norm_eps=0.5)  # new configuration, same weights
    after_config = make_embedder(path=own_gemma, **kw).transform(texts)
    assert sum(forward_rows) > n, "an edited config.json was served from the cache"
    np.testing.assert_allclose(after_config, embed_fresh(own_gemma, texts), atol=1e-5)
    assert not np.allclose(after_config, after_weights, atol=1e-3)


def test_disk_cache_key_covers_every_setting(
    embed_fresh, make_embedder, tiny_gemma, tmp_path, forward_rows
):
    texts = ["alpha beta", "gamma delta epsilon"]
    cache = tmp_path / "cache"
    base = {"cache_dir": cache, "memory_cache": False}
    make_embedder(**base).transform(texts)
    copy = shutil.copytree(tiny_gemma, tmp_path / "same-model-elsewhere")
    changes = [
        ("pooling", {"pooling": "last"}),
        ("max_length", {"max_length": 7}),
        ("padding", {"padding": "max_length"}),
        ("dtype", {"dtype": "bfloat16"}),
        ("quantization", {"quantization": "8bit", "devices": "cpu"}),
        ("model path", {"model": copy}),
        ("text", {"texts": ["alpha beta!", "gamma delta epsilon!"]}),
    ]
    for name, change in changes:
        change = dict(change)
        model = change.pop("model", tiny_gemma)
        these = change.pop("texts", texts)
        n = sum(forward_rows)
        cached = make_embedder(path=model, **base, **change).transform(these)
        assert sum(forward_rows) == n + 2, f"changing {name} reused cached vectors"
        n = sum(forward_rows)
        again = make_embedder(path=model, **base, **change).transform(these)
        assert sum(forward_rows) == n, f"{name}: the new entries are not reused"
        np.testing.assert_array_equal(again, cached)
        if name in ("pooling", "max_length", "dtype", "quantization", "text"):
            fresh = embed_fresh(model, these, **change)
            np.testing.assert_allclose(cached, fresh, atol=1e-5, err_msg=name)
    # the default settings still hit their own entries
    n = sum(forward_rows)
    make_embedder(**base).transform(texts)
    assert sum(forward_rows) == n


def test_non_finite_entry_with_valid_checksum_is_recomputed(
    make_embedder, tiny_gemma, tmp_path, forward_rows
):
    texts = ["one", "two"]
    ref = make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    entry = sorted(tmp_path.rglob("*.emb"))[0]
    entry.write_bytes(_encode(np.full(64, np.nan, dtype=np.float32)))
    assert verify_disk_cache(tmp_path) == (1, [entry])
    with pytest.warns(CacheIntegrityWarning, match="truncated or corrupt"):
        again = make_embedder(cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert np.isfinite(again).all()
    np.testing.assert_allclose(again, ref, atol=1e-6)
    assert verify_disk_cache(tmp_path) == (2, [])


def test_unwritable_cache_warns_once_and_keeps_the_vectors(
    embed_fresh, make_embedder, tiny_gemma, tmp_path
):
    texts = [f"text number {i}" for i in range(12)]
    emb = make_embedder(cache_dir=tmp_path, memory_cache=False)
    ref = emb.transform(texts[:1])
    (fp_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    shutil.rmtree(fp_dir)
    fp_dir.mkdir()
    for i in range(256):  # every shard folder is a file: no entry can be written
        (fp_dir / f"{i:02x}").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        X = emb.transform(texts)
    assert [type(w.message) for w in caught] == [CacheWriteWarning]
    assert "could not write 12 embedding cache entries" in str(caught[0].message)
    np.testing.assert_allclose(X[:1], ref, atol=1e-6)
    np.testing.assert_allclose(X, embed_fresh(tiny_gemma, texts), atol=1e-5)


_WRITER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from gemma_pref import GemmaEmbedder

model, cache, texts_file, ready, me, out = sys.argv[1:]
texts = json.loads(Path(texts_file).read_text())
emb = GemmaEmbedder(model, max_length=64, dtype="float32", devices="cpu", backend="torch",
                    batch_size=2, memory_cache=False, cache_dir=cache)
emb.transform([f"warm-up of writer {me}"])  # load before the start line
Path(ready, me).touch()
deadline = time.monotonic() + 300
while len(list(Path(ready).iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
np.save(out, emb.transform(texts))
"""


def test_two_processes_share_one_cache_without_corrupting_it(
    embed_fresh, make_embedder, tiny_gemma, arena_texts, tmp_path, forward_rows
):
    texts = [str(t) for t in arena_texts[:120]]
    first, second = texts[:80], texts[40:][::-1]  # 40 texts written by both
    cache, ready = tmp_path / "cache", tmp_path / "ready"
    ready.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    procs = []
    for name, part in (("a", first), ("b", second)):
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(tiny_gemma),
                    str(cache),
                    str(tmp_path / f"{name}.json"),
                    str(ready),
                    name,
                    str(tmp_path / f"{name}.npy"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )
        )
    try:
        for p in procs:
            output = p.communicate(timeout=240)[0].decode(errors="replace")
            assert p.returncode == 0, output[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    n_ok, bad = verify_disk_cache(cache)
    assert bad == [] and n_ok == 120 + 2  # every text once, plus two warm-ups
    assert not list(cache.rglob("*.tmp"))  # no temporary file left behind
    fresh = embed_fresh(tiny_gemma, texts, max_length=64)
    n = sum(forward_rows)
    from_cache = make_embedder(
        path=tiny_gemma, max_length=64, cache_dir=cache, memory_cache=False
    ).transform(texts)
    assert sum(forward_rows) == n  # all 120 read from the shared cache
    np.testing.assert_allclose(from_cache, fresh, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), fresh[:80], atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), fresh[40:][::-1], atol=1e-5)


def test_cache_dir_that_is_a_file_is_refused(make_embedder, tiny_gemma, tmp_path):
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    match = "'cache_dir' parameter of GemmaEmbedder must be a directory"
    with pytest.raises(ValueError, match=match):
        make_embedder(cache_dir=afile).fit(["x"])


def test_disk_cache_get_on_missing_shard_is_a_plain_miss(tmp_path):
    cache = DiskCache(tmp_path, "f" * 64)
    assert cache.get("ab" * 20) is None
    (cache.dir / "cd").write_bytes(b"")  # a file where a shard folder would be
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("cd" * 20) is None


def test_fingerprint_follows_content_not_timestamps(tiny_gemma, tmp_path):
    import os
    import shutil

    from gemma_pref.backend._checkpoints import model_fingerprint

    copy = tmp_path / "model"
    shutil.copytree(tiny_gemma, copy)
    before = model_fingerprint(copy)
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(1, 1))  # a re-mounted dataset: new times, same bytes
    assert model_fingerprint(copy) == before
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, other content
    weights.write_bytes(bytes(blob))
    assert model_fingerprint(copy) != before
