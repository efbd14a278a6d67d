from __future__ import annotations

import numpy as np
import pytest

from gemma_pref import GemmaEmbedder
from gemma_pref.cache import CacheIntegrityWarning, MemoryCache


@pytest.fixture
def count_rows(monkeypatch):
    """Count the rows that go through the real Gemma-2 forward pass."""
    from transformers.models.gemma2.modeling_gemma2 import Gemma2Model

    rows: list[int] = []
    original = Gemma2Model.forward

    def counting_forward(self, *args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows.append(int(ids.shape[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Gemma2Model, "forward", counting_forward)
    return rows


def _emb(path, **kw):
    params = {"max_length": 96, "torch_dtype": "float32", **kw}
    return GemmaEmbedder(path, **params)


def test_memory_cache_embeds_each_distinct_text_once(tiny_gemma, arena_texts, count_rows):
    texts = list(arena_texts[:20])
    first = _emb(tiny_gemma).transform(texts + texts[:5])  # duplicates in one call
    assert sum(count_rows) == 20
    again = _emb(tiny_gemma).transform(texts[::-1])  # a new instance (a clone)
    assert sum(count_rows) == 20
    np.testing.assert_array_equal(again, first[:20][::-1])


def test_cache_key_covers_settings(tiny_gemma, count_rows):
    texts = ["alpha beta", "gamma delta"]
    _emb(tiny_gemma).transform(texts)
    n = sum(count_rows)
    for change in ({"pooling": "last"}, {"max_length": 95}, {"padding": "max_length"}):
        _emb(tiny_gemma, **change).transform(texts)
        assert sum(count_rows) > n, change
        n = sum(count_rows)
    GemmaEmbedder(tiny_gemma, max_length=96, torch_dtype="bfloat16").transform(texts)
    assert sum(count_rows) > n


def test_disk_cache_round_trip_and_corruption(tiny_gemma, tmp_path, count_rows):
    texts = ["first text", "second text", "third"]
    ref = _emb(tiny_gemma, cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(count_rows) == 3
    entries = sorted(tmp_path.rglob("*.emb"))
    assert len(entries) == 3 and len(list(tmp_path.glob("*/meta.json"))) == 1
    again = _emb(tiny_gemma, cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(count_rows) == 3
    np.testing.assert_array_equal(again, ref)
    # truncate one entry: detected, warned about, recomputed
    entries[0].write_bytes(entries[0].read_bytes()[:50])
    with pytest.warns(CacheIntegrityWarning, match="truncated or corrupt"):
        fixed = _emb(tiny_gemma, cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(count_rows) == 4
    np.testing.assert_allclose(fixed, ref, atol=1e-6)
    # flip one payload byte: checksum catches it
    blob = bytearray(entries[1].read_bytes())
    blob[-1] ^= 0xFF
    entries[1].write_bytes(bytes(blob))
    with pytest.warns(CacheIntegrityWarning):
        _emb(tiny_gemma, cache_dir=tmp_path, memory_cache=False).transform(texts)
    assert sum(count_rows) == 5


def test_memory_cache_is_bounded():
    cache = MemoryCache(max_bytes=3 * 16)
    for i in range(5):
        cache.put(str(i), np.full(4, i, dtype=np.float32))
    assert len(cache) == 3 and cache.nbytes == 48
    assert cache.get("0") is None and cache.get("4") is not None
