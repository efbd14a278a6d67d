"""Shared fixtures: a tiny random Gemma-2 checkpoint and the bundled sample."""

from __future__ import annotations

import os

import pytest

# The whole suite runs offline: a download attempt fails loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Keep converted models and CLI caches out of the user's ~/.cache."""
    home = tmp_path_factory.mktemp("gemma-pref-home")
    old = os.environ.get("GEMMA_PREF_HOME")
    os.environ["GEMMA_PREF_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("GEMMA_PREF_HOME", None)
    else:
        os.environ["GEMMA_PREF_HOME"] = old


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory):
    """Path of a tiny random Gemma-2 checkpoint + tokenizer, built offline."""
    from gemma_pref.testing import make_tiny_gemma

    return make_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma2"))


@pytest.fixture(scope="session")
def arena():
    """The bundled 715-row arena sample."""
    from gemma_pref import load_arena_sample

    return load_arena_sample()


@pytest.fixture(scope="session")
def arena_texts(arena):
    from gemma_pref import ArenaTextFormatter

    return ArenaTextFormatter().fit_transform(arena)


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    """Each test starts with an empty process-wide embedding cache."""
    from gemma_pref import clear_memory_cache

    clear_memory_cache()
    yield
    clear_memory_cache()
