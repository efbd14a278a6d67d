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
    from gemma_pref.embedding import clear_memory_cache

    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def make_embedder(tiny_gemma, request):
    """A factory of GemmaEmbedder on the tiny checkpoint.

    ``make_embedder(path=None, **params)``. Defaults: the tiny checkpoint,
    float32, 64 tokens, PyTorch (these tests count, hook and break PyTorch
    forward passes; the ONNX Runtime path has its own tests); a test module
    may set ``EMBEDDER_DEFAULTS`` (a dict) to change them for its tests;
    keywords override both.
    """
    from gemma_pref import GemmaEmbedder

    defaults = {
        "max_length": 64,
        "dtype": "float32",
        "backend": "torch",
        **getattr(request.module, "EMBEDDER_DEFAULTS", {}),
    }

    def make(path=None, **params):
        return GemmaEmbedder(tiny_gemma if path is None else path, **{**defaults, **params})

    return make


@pytest.fixture
def forward_rows(monkeypatch):
    """Batch sizes of every forward pass the engine runs (a list), whatever
    runs it (PyTorch or ONNX Runtime); an ONNX export's own checks against
    PyTorch are not the engine's and do not count."""
    from gemma_pref.embedding._engine import Runtime

    rows: list[int] = []
    original = Runtime._forward

    def counting_forward(self, dev_index, batch_rows, job):
        rows.append(len(batch_rows))
        return original(self, dev_index, batch_rows, job)

    monkeypatch.setattr(Runtime, "_forward", counting_forward)
    return rows


def replicas_loaded(estimator) -> bool:
    """Whether ``estimator`` holds loaded model replicas right now.

    The one place the tests look at the lazily loaded state (the ``_lazy_``
    attributes that pickling drops); elsewhere they use ``estimator.load()``.
    """
    return any(k.startswith("_lazy_runtime") and v is not None for k, v in vars(estimator).items())


@pytest.fixture
def is_loaded():
    """:func:`replicas_loaded` as a fixture."""
    return replicas_loaded
