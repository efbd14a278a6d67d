"""Hugging Face Hub names, as transformers users pass them, with the suite offline.

A local Hugging Face cache is laid out here as ``huggingface_hub`` writes it
(``models--org--name/refs/main`` naming a commit, ``snapshots/<commit>/``),
holding two revisions of one tiny checkpoint. A name in the cache is found at
``main`` or at the revision asked for; the revision is part of the model's
fingerprint and of the embedding cache keys; a name missing from the cache is
refused under ``HF_HUB_OFFLINE=1`` (the suite runs with it) with the remedy.
Downloading itself needs the network and is not run here.
"""

from __future__ import annotations

import numpy as np
import pytest

import gemma_pref as gp
from gemma_pref.exceptions import ModelNotFoundError
from gemma_pref.testing import make_tiny_checkpoint

OLD, NEW = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-cache")
    repo = root / "models--org--tiny-qwen"
    for commit, seed in ((OLD, 0), (NEW, 1)):
        make_tiny_checkpoint(repo / "snapshots" / commit, "qwen2", num_hidden_layers=1, seed=seed)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    return root


@pytest.fixture
def cached(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    return hub_cache


def _embedder(name, **params):
    defaults = {"max_length": 32, "dtype": "float32", "backend": "torch", "devices": "cpu"}
    return gp.GemmaEmbedder(name, **{**defaults, **params})


def test_a_cached_name_is_found_at_main_or_at_its_revision(cached, arena_texts, tmp_path):
    texts = list(arena_texts[:4])
    snapshots = cached / "models--org--tiny-qwen" / "snapshots"
    main = _embedder("org/tiny-qwen").fit_transform(texts)
    np.testing.assert_array_equal(main, _embedder(str(snapshots / NEW)).fit_transform(texts))
    old = _embedder("org/tiny-qwen", revision=OLD)
    np.testing.assert_array_equal(
        old.fit_transform(texts), _embedder(str(snapshots / OLD)).fit_transform(texts)
    )
    assert not np.allclose(main, old.transform(texts))
    # the revision is part of the fingerprint, so of the cache keys
    from gemma_pref.backend._checkpoints import model_fingerprint

    assert model_fingerprint(snapshots / OLD, include_path=False) != model_fingerprint(
        snapshots / NEW, include_path=False
    )
    disk = tmp_path / "emb-cache"
    gp.embedding.clear_memory_cache()
    for revision in (None, OLD):
        _embedder("org/tiny-qwen", revision=revision, cache_dir=disk).fit_transform(texts)
    entries = [p for p in disk.rglob("*") if p.is_file()]
    gp.embedding.clear_memory_cache()
    again = _embedder("org/tiny-qwen", revision=OLD, cache_dir=disk, memory_cache=False)
    np.testing.assert_array_equal(again.fit_transform(texts), old.transform(texts))
    assert [p for p in disk.rglob("*") if p.is_file()] == entries  # read, nothing new


def test_a_missing_name_is_refused_offline_naming_it(cached):
    with pytest.raises(
        ModelNotFoundError,
        match=r"'org/not-here' at revision 'v2' is not in the local Hugging Face cache and "
        r"HF_HUB_OFFLINE=1 forbids downloading it.*huggingface-cli download org/not-here",
    ):
        _embedder("org/not-here", revision="v2").fit(["x"])
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE=1"):
        _embedder("org/tiny-qwen", revision="c" * 40).fit(["x"])


def test_the_recipes_and_the_command_line_take_hub_names(cached, arena, tmp_path, capsys):
    from gemma_pref.cli import main

    rows = arena.iloc[:30]
    pipe = gp.make_preference_pipeline(
        "org/tiny-qwen", revision=OLD, max_length=32, dtype="float32", cache_dir=None
    )
    pipe.fit(rows, gp.data.labels_from_winner(rows))
    assert pipe.embedder_.revision == OLD
    assert "chat template" in pipe.formatter_.template_in_use()  # Qwen's own
    out = tmp_path / "emb.npy"
    args = ["-q", "embed", "--model", "org/tiny-qwen", "--revision", OLD, "--max-length", "32"]
    assert main([*args, "--dtype", "float32", "--no-cache", "-o", str(out)]) == 0
    assert np.load(out).shape == (715, 128)  # the two answers of each row
    assert main([*args[:3], "org/nowhere", "-o", str(tmp_path / "x.npy")]) == 1
    assert "'org/nowhere' is not in the local Hugging Face cache" in capsys.readouterr().err
