"""GemmaEmbedder's ONNX Runtime path, on the tiny random Gemma-2 and real texts.

Nothing here assumes a CPU kind: where ``backend="auto"`` lands is computed
from the CPU's own bf16 support, as the library does.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
from _optional import require
from sklearn.utils._param_validation import InvalidParameterError

import gemma_pref as gp
from gemma_pref.backend import _compute

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
    native_bf16 = _compute.cpu_supports_bf16()
    path = make_embedder(backend="auto", dtype="auto", devices="cpu").compute_path()
    if native_bf16:
        assert path == {
            "backend": "torch",
            "dtype": "bfloat16",
            "devices": ["cpu"],
            "reason": "native bf16 on this CPU",
            "quantization": None,
            "layers": "last",
            "decoder_layers": "all",
        }
    else:  # the last hidden state: float32 weights (int8 only for middle layers)
        assert (path["backend"], path["dtype"], path["quantization"]) == (
            "onnxruntime",
            "float32",
            None,
        )
    # float32 asked for: ONNX Runtime's float32 on any CPU
    path = make_embedder(backend="auto", dtype="float32", devices="cpu").compute_path()
    assert (path["backend"], path["dtype"], path["quantization"]) == (
        "onnxruntime",
        "float32",
        None,
    )
    # without native bf16, int8 weights only where a middle layer is pooled
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_compute, "cpu_supports_bf16", lambda: False)
        last = make_embedder(backend="auto", dtype="auto", devices="cpu").compute_path()
        middle = make_embedder(backend="auto", dtype="auto", devices="cpu", layer=1)
        assert (last["backend"], last["quantization"]) == ("onnxruntime", None)
        assert middle.compute_path()["quantization"] == "8bit"
    # the rule itself, on both CPU kinds (the CPU check is what is replaced)
    for bf16, expected in [(True, ("torch", None)), (False, ("onnxruntime", "8bit"))]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_compute, "cpu_supports_bf16", lambda bf16=bf16: bf16)
            got = _compute.resolve_compute("auto", ["cpu"], "auto", None)
            assert (got.backend, got.quantization) == expected
            # the fine-tuned classifier keeps float32 weights
            assert (
                _compute.resolve_compute(
                    "auto", ["cpu"], "auto", None, onnx_int8=False
                ).quantization
                is None
            )
    # 8-bit weights on a CPU: ONNX Runtime's int8 on any CPU; 4-bit and
    # other dtypes stay on PyTorch
    path = make_embedder(backend="auto", quantization="8bit", devices="cpu").compute_path()
    assert (path["backend"], path["dtype"]) == ("onnxruntime", "float32")
    assert path["reason"] == "8-bit weights on CPU: ONNX Runtime int8"
    path = make_embedder(backend="auto", quantization="4bit", devices="cpu").compute_path()
    assert path["backend"] == "torch"
    path = make_embedder(backend="torch", quantization="8bit", devices="cpu").compute_path()
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
        ({"quantization": "4bit"}, "quantization='4bit'"),
        ({"dtype": "bfloat16"}, "dtype='bfloat16'"),
    ],
)
def test_onnxruntime_refuses_what_it_cannot_run(make_embedder, texts, params, message):
    emb = make_embedder(backend="onnxruntime", devices="cpu", **params)
    with pytest.raises(ValueError, match=message):
        emb.fit_transform(texts[:2])


def test_onnxruntime_refuses_gpus():
    with pytest.raises(ValueError, match="CPU devices only"):
        _compute.resolve_backend("onnxruntime", ["cuda:0"], "auto", None)
    # auto on a GPU is PyTorch, without touching the GPU
    assert _compute.resolve_backend("auto", ["cuda:0"], "float16", None)[0] == "torch"


def test_bad_backend_is_rejected_in_fit(make_embedder):
    with pytest.raises(InvalidParameterError, match="'backend' parameter of GemmaEmbedder"):
        make_embedder(backend="tensorrt").fit(["a"])


def test_runtime_refuses_another_head(make_embedder, texts):
    from gemma_pref.embedding._engine import pooling_head

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
    y = gp.data.labels_from_winner(df)
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


def _int8_exports() -> list[dict]:
    return [
        json.loads((p / "meta.json").read_text())
        for p in _exports()
        if "quantization" in json.loads((p / "meta.json").read_text())
    ]


def test_8bit_weights_run_on_onnxruntime_close_to_float32(make_embedder, texts, tmp_path, caplog):
    """quantization="8bit" on a CPU: ONNX Runtime's dynamic int8 quantization
    of the checked float32 export, made once beside it; vectors close to the
    float32 ones but not equal, cached under their own key."""
    cache = tmp_path / "cache"
    fp32 = make_embedder(backend="onnxruntime", cache_dir=cache, memory_cache=False)
    ref = fp32.fit_transform(texts)
    made_before = len(_int8_exports())
    with caplog.at_level(logging.INFO, logger="gemma_pref"):
        emb = make_embedder(
            backend="auto", quantization="8bit", cache_dir=cache, memory_cache=False
        )
        got = emb.fit_transform(texts)
    cos = _cosines(got, ref)
    assert cos.min() > 0.99, cos.min()
    assert np.abs(got - ref).max() > 1e-5  # the weights are 8-bit: not the same vectors
    # made once, beside the float32 export, with what it was made from and its size
    metas = _int8_exports()
    assert len(metas) == made_before + 1
    meta = next(m for m in metas if m["quantization"] == _compute.int8_settings())
    assert meta["quantization"]["reduce_range"] == (not _compute.cpu_has_vnni())
    assert (Path(os.environ["GEMMA_PREF_HOME"]) / "onnx" / meta["source"] / "model.onnx").is_file()
    assert 0 < meta["bytes"] < meta["source_bytes"]
    assert meta["probe_min_cosine_to_float32"] >= 0.9
    messages = [r.getMessage() for r in caplog.records]
    timed = r"One-time: quantized to 8-bit weights in \d+ s \(\d+\.\d\d (KB|MB) on disk"
    assert any(re.match(timed, m) for m in messages)
    assert any("int8 weights (dynamic, per channel" in m for m in messages)
    # its vectors have their own cache entry, recording the int8 settings
    metas = [json.loads((p / "meta.json").read_text()) for p in cache.iterdir() if p.is_dir()]
    assert sorted(m.get("int8") is not None for m in metas) == [False, True]
    again = make_embedder(backend="onnxruntime", quantization="8bit", cache_dir=cache)
    np.testing.assert_array_equal(again.fit_transform(texts), got)
    assert len(_int8_exports()) == made_before + 1  # reused, not made again


def test_fine_tuned_8bit_weights_stay_bitsandbytes(tiny_gemma):
    """A classifier trained on bitsandbytes' 8-bit weights predicts on them:
    auto keeps it on PyTorch, and ONNX Runtime refuses its 8-bit weights."""
    clf = gp.GemmaPreferenceClassifier(tiny_gemma, quantization="8bit", devices="cpu")
    assert clf.compute_path()["backend"] == "torch"
    with pytest.raises(ValueError, match="backend='onnxruntime' runs float32 weights"):
        _compute.resolve_backend("onnxruntime", ["cpu"], "auto", "8bit", onnx_int8=False)


def test_8bit_weights_of_cpus_without_vnni_are_7_bit(make_embedder, texts, monkeypatch):
    """On CPUs without VNNI the weights are quantized to 7 bits (reduce_range,
    as ONNX Runtime advises there): another graph and another cache key,
    whatever CPU runs the test (the CPU check is what is replaced)."""
    vnni = make_embedder(backend="onnxruntime", quantization="8bit")
    monkeypatch.setattr(_compute, "cpu_has_vnni", lambda: True)
    a = vnni.fit_transform(texts[:4])
    key_a = vnni._vector_settings(*_torch_float32_onnx(), "8bit")
    monkeypatch.setattr(_compute, "cpu_has_vnni", lambda: False)
    avx2 = make_embedder(backend="onnxruntime", quantization="8bit")
    b = avx2.fit_transform(texts[:4])
    key_b = avx2._vector_settings(*_torch_float32_onnx(), "8bit")
    assert key_a["int8"]["reduce_range"] is False and key_b["int8"]["reduce_range"] is True
    assert _cosines(a, b).min() > 0.99 and not np.array_equal(a, b)
    assert {m["quantization"]["reduce_range"] for m in _int8_exports()} >= {False, True}


def _torch_float32_onnx():
    import torch

    return torch.float32, "onnxruntime"
