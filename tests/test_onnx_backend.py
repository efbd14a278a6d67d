"""GemmaEmbedder's ONNX Runtime path, on the tiny random Gemma-2 and real texts.

Nothing here assumes a CPU kind: where ``backend="auto"`` lands is computed
from the CPU's own bf16 support, as the library does.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from _optional import require
from sklearn.utils._param_validation import InvalidParameterError

import gemma_pref as gp
from gemma_pref import _loading

require("onnxruntime", "onnx")
require("onnx", "onnx")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _exports() -> list[Path]:
    root = Path(os.environ["GEMMA_PREF_HOME"]) / "onnx"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


@pytest.fixture
def texts(arena_texts):
    # real pair texts of the sample, long ones (beyond the tiny model's
    # 128-token sliding window at max_length=256) and a one-token-ish one
    picked = list(arena_texts[:20]) + ["x", ""]
    return picked


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_onnxruntime_gives_the_vectors_of_pytorch(make_embedder, texts, pooling):
    torch_vecs = make_embedder(max_length=256, pooling=pooling).fit_transform(texts)
    ort = make_embedder(max_length=256, pooling=pooling, backend="onnxruntime")
    assert ort.compute_path()["backend"] == "onnxruntime"
    ort_vecs = ort.fit_transform(texts)
    assert ort_vecs.dtype == np.float32 and ort_vecs.shape == torch_vecs.shape
    assert _cosines(ort_vecs, torch_vecs).min() >= 0.9999
    np.testing.assert_allclose(ort_vecs, torch_vecs, rtol=1e-3, atol=1e-4)
    # the replicas are ONNX Runtime sessions, not PyTorch modules
    (replica,) = ort.load()
    assert type(replica).__name__ == "OnnxReplica"


@pytest.mark.parametrize("layer", [1, [0, 1]])
def test_onnxruntime_gives_the_vectors_of_pytorch_for_middle_layers(
    make_embedder, texts, layer, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEMMA_PREF_HOME", str(tmp_path / "home"))
    torch_vecs = make_embedder(max_length=256, layer=layer).fit_transform(texts)
    ort = make_embedder(max_length=256, layer=layer, backend="onnxruntime")
    ort_vecs = ort.fit_transform(texts)
    assert _cosines(ort_vecs, torch_vecs).min() >= 0.9999
    np.testing.assert_allclose(ort_vecs, torch_vecs, rtol=1e-3, atol=1e-4)
    # a graph of its own, named by the hidden states it pools
    last = make_embedder(max_length=256, backend="onnxruntime").fit_transform(texts)
    assert not np.allclose(last, ort_vecs, atol=1e-3)
    exports = _exports()
    assert len(exports) == 2
    heads = sorted(json.loads((e / "meta.json").read_text())["head"] for e in exports)
    layers = (layer,) if isinstance(layer, int) else tuple(layer)
    assert heads == ["PoolingHead(mode='mean')", f"PoolingHead(mode='mean', layers={layers!r})"]


def test_export_is_checked_once_and_reused(make_embedder, texts, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMMA_PREF_HOME", str(tmp_path / "home"))
    before = set(_exports())
    with caplog.at_level(logging.INFO, logger="gemma_pref"):
        make_embedder(backend="onnxruntime", memory_cache=False).fit_transform(texts[:4])
    new = sorted(set(_exports()) - before)
    assert len(new) == 1
    meta = json.loads((new[0] / "meta.json").read_text())
    assert meta["probe_min_cosine"] >= 0.9999 and meta["probe_max_length"] == 64
    assert sum("Exporting" in r.getMessage() for r in caplog.records) == 1
    assert any("GemmaEmbedder runs onnxruntime" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gemma_pref"):
        # another estimator, same settings: the checked export is reused
        make_embedder(backend="onnxruntime", memory_cache=False).fit_transform(texts[4:6])
        assert not any("Exporting" in r.getMessage() for r in caplog.records)
        # longer texts than the export was checked with: exported and checked again
        make_embedder(backend="onnxruntime", memory_cache=False, max_length=96).fit_transform(
            texts[4:6]
        )
    assert sum("Exporting" in r.getMessage() for r in caplog.records) == 1
    assert len(set(_exports()) - before) == 1
    assert json.loads((new[0] / "meta.json").read_text())["probe_max_length"] == 96


def test_auto_follows_the_cpu(make_embedder):
    native_bf16 = _loading.cpu_supports_bf16()
    path = make_embedder(backend="auto", dtype="auto", devices="cpu").compute_path()
    if native_bf16:
        assert path == {
            "backend": "torch",
            "dtype": "bfloat16",
            "devices": ["cpu"],
            "reason": "native bf16 on this CPU",
            "layers": "last",
            "decoder_layers": "all",
        }
    else:
        assert path["backend"] == "onnxruntime" and path["dtype"] == "float32"
    # float32 asked for: ONNX Runtime on any CPU
    path = make_embedder(backend="auto", dtype="float32", devices="cpu").compute_path()
    assert (path["backend"], path["dtype"]) == ("onnxruntime", "float32")
    # quantized weights and other dtypes stay on PyTorch
    path = make_embedder(backend="auto", quantization="8bit", devices="cpu").compute_path()
    assert path["backend"] == "torch"
    path = make_embedder(backend="auto", dtype="bfloat16", devices="cpu").compute_path()
    assert (path["backend"], path["dtype"]) == ("torch", "bfloat16")
    # asked for explicitly, under dtype="auto": float32 on any CPU
    path = make_embedder(backend="onnxruntime", dtype="auto", devices="cpu").compute_path()
    assert (path["backend"], path["dtype"]) == ("onnxruntime", "float32")


def test_auto_gives_the_vectors_of_pytorch_in_its_dtype(make_embedder, texts):
    """Whichever path auto takes on this CPU, it matches PyTorch in that dtype."""
    auto = make_embedder(backend="auto", dtype="auto")
    path = auto.compute_path()
    got = auto.fit_transform(texts[:6])
    ref = make_embedder(backend="torch", dtype=path["dtype"]).fit_transform(texts[:6])
    assert _cosines(got, ref).min() >= 0.9999


def test_cache_keeps_the_backends_apart(make_embedder, texts, tmp_path):
    cache = tmp_path / "cache"
    a = make_embedder(backend="torch", cache_dir=cache, memory_cache=False).fit_transform(texts[:3])
    b = make_embedder(backend="onnxruntime", cache_dir=cache, memory_cache=False).fit_transform(
        texts[:3]
    )
    keys = [p for p in cache.iterdir() if p.is_dir()]
    assert len(keys) == 2
    metas = sorted(json.loads((p / "meta.json").read_text()).get("backend", "torch") for p in keys)
    assert metas == ["onnxruntime", "torch"]
    assert _cosines(a, b).min() >= 0.9999


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"quantization": "8bit"}, "quantization='8bit'"),
        ({"dtype": "bfloat16"}, "dtype='bfloat16'"),
    ],
)
def test_onnxruntime_refuses_what_it_cannot_run(make_embedder, texts, params, message):
    emb = make_embedder(backend="onnxruntime", devices="cpu", **params)
    with pytest.raises(ValueError, match=message):
        emb.fit_transform(texts[:2])


def test_onnxruntime_refuses_gpus():
    with pytest.raises(ValueError, match="CPU devices only"):
        _loading.resolve_backend("onnxruntime", ["cuda:0"], "auto", None)
    # auto on a GPU is PyTorch, without touching the GPU
    assert _loading.resolve_backend("auto", ["cuda:0"], "float16", None)[0] == "torch"


def test_bad_backend_is_rejected_in_fit(make_embedder):
    with pytest.raises(InvalidParameterError, match="'backend' parameter of GemmaEmbedder"):
        make_embedder(backend="tensorrt").fit(["a"])


def test_runtime_refuses_another_head(make_embedder, texts):
    from gemma_pref._engine import pooling_head

    emb = make_embedder(backend="onnxruntime")
    emb.fit_transform(texts[:2])
    runtime = emb._lazy_runtime[1]
    with pytest.raises(ValueError, match="exported with PoolingHead"):
        runtime.run(
            texts[:2], pooling_head("last"), max_length=64, batch_size=8, max_tokens_per_batch=None
        )


def test_pipeline_round_trip_on_onnxruntime(tiny_gemma, arena, tmp_path):
    """The default pipeline on the ONNX path: fit, joblib, predict_proba."""
    import joblib

    df = arena.iloc[:40]
    y = gp.labels_from_winner(df)
    pipe = gp.make_preference_pipeline(tiny_gemma, max_length=48, backend="onnxruntime")
    pipe.fit(df, y)
    proba = pipe.predict_proba(df)
    joblib.dump(pipe, tmp_path / "p.joblib")
    again = joblib.load(tmp_path / "p.joblib")
    np.testing.assert_allclose(again.predict_proba(df), proba, atol=1e-6)
    assert again.embedder_.backend == "onnxruntime"


def test_fine_tuned_classifier_predicts_the_same_on_onnxruntime(tiny_gemma, tmp_path, monkeypatch):
    """Training is PyTorch's; the fitted adapter, merged, exports and predicts alike."""
    monkeypatch.setenv("GEMMA_PREF_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(0)
    words = "river stone cloud lamp forest bridge candle window".split()
    y = rng.integers(0, 3, 48)
    X = [f"{('crimson', 'azure', 'olive')[k]} " + " ".join(rng.choice(words, 8)) for k in y]
    clf = gp.GemmaPreferenceClassifier(
        tiny_gemma,
        max_length=32,
        lora_r=4,
        learning_rate=2e-3,
        batch_size=8,
        gradient_accumulation_steps=1,
        dtype="float32",
        random_state=0,
        devices="cpu",
        backend="torch",
    ).fit(X, y)
    expected = clf.predict_proba(X)
    clf.set_params(backend="onnxruntime")
    assert clf.compute_path()["backend"] == "onnxruntime"
    got = clf.predict_proba(X)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert type(clf.load()[0]).__name__ == "OnnxReplica"
    # another fit (other adapter weights): its own export, not the first one's
    other = gp.GemmaPreferenceClassifier(**{**clf.get_params(), "random_state": 1}).fit(X, y)
    other.predict_proba(X[:4])
    assert len(_exports()) == 2
