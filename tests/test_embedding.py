from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from gemma_pref import DeviceWorkerError, GemmaEmbedder, ModelNotFoundError

EMBEDDER_DEFAULTS = {"max_length": 128, "memory_cache": False}


def test_shape_dtype_and_finite(make_embedder, tiny_gemma, arena_texts):
    X = make_embedder().fit_transform(arena_texts[:40])
    assert X.shape == (40, 64) and X.dtype == np.float32
    assert np.isfinite(X).all()
    # distinct texts give distinct vectors
    assert len({row.tobytes() for row in X}) == 40


def test_masked_mean_is_padding_invariant(make_embedder, tiny_gemma):
    short = "Short text."
    long = "A much longer text that needs many more tokens than the short one. " * 8
    emb = make_embedder(batch_size=2, max_length=512)
    alone = emb.transform([short])[0]
    batched = emb.transform([short, long])[0]
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    padded = make_embedder(padding="max_length", max_length=512).transform([short])[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5, rtol=0)


def test_mean_differs_from_unmasked_mean(make_embedder, tiny_gemma):
    # the seed's unmasked mean would count padding: ours must not
    import torch
    from transformers import AutoModel, AutoTokenizer

    text = "Short text."
    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    model = AutoModel.from_pretrained(tiny_gemma).eval()
    enc = tok([text], padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    unmasked = hidden.mean(dim=1)[0].numpy()
    n = int(enc["attention_mask"].sum())
    masked = hidden[0, :n].mean(dim=0).numpy()
    ours = make_embedder().transform([text])[0]
    np.testing.assert_allclose(ours, masked, atol=1e-5)
    assert np.abs(ours - unmasked).max() > 1e-3


def test_last_pooling_matches_last_real_token(make_embedder, tiny_gemma):
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["one two three", "four"]
    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    model = AutoModel.from_pretrained(tiny_gemma).eval()
    ours = make_embedder(pooling="last", batch_size=2).transform(texts)
    for i, text in enumerate(texts):
        enc = tok([text], return_tensors="pt")
        with torch.no_grad():
            ref = model(**enc).last_hidden_state[0, -1].numpy()
        np.testing.assert_allclose(ours[i], ref, atol=1e-5)


def test_order_is_restored_after_length_sorting(make_embedder, tiny_gemma, arena_texts):
    texts = list(arena_texts[:60])
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(texts))
    emb = make_embedder(batch_size=7)
    X = emb.transform(texts)
    Xp = emb.transform([texts[i] for i in perm])
    np.testing.assert_allclose(Xp, X[perm], atol=1e-5)
    # each row equals the row embedded alone
    for i in (0, 13, 59):
        np.testing.assert_allclose(X[i], emb.transform([texts[i]])[0], atol=1e-5)


def test_two_devices_equal_one_device_in_input_order(make_embedder, tiny_gemma, arena_texts):
    texts = list(arena_texts[:50])
    one = make_embedder(devices="cpu", batch_size=4).transform(texts)
    two_emb = make_embedder(devices=["cpu", "cpu"], batch_size=4)
    two = two_emb.transform(texts)
    np.testing.assert_allclose(two, one, atol=1e-5)
    assert len(two_emb.load()) == 2


def test_token_budget_batches_give_same_vectors(make_embedder, tiny_gemma, arena_texts):
    texts = list(arena_texts[:30])
    ref = make_embedder(batch_size=1).transform(texts)
    budget = make_embedder(batch_size=64, max_tokens_per_batch=300).transform(texts)
    np.testing.assert_allclose(budget, ref, atol=1e-5)


def test_worker_error_names_device_and_joins_threads(make_embedder, tiny_gemma, arena_texts):
    emb = make_embedder(devices=["cpu", "cpu"], batch_size=2)
    emb.transform(list(arena_texts[:2]))  # load both replicas
    models = emb.load()

    def explode(module, args, kwargs):
        raise RuntimeError("replica 2 is broken")

    handle = models[1].register_forward_pre_hook(explode, with_kwargs=True)
    before = threading.active_count()
    try:
        with pytest.raises(
            DeviceWorkerError, match=r"device 'cpu' \(worker 2 of 2\).*replica 2 is broken"
        ) as info:
            emb.transform(list(arena_texts[:40]))
    finally:
        handle.remove()
    assert info.value.device == "cpu"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert threading.active_count() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("gemma-pref-")]


def test_single_device_error_is_wrapped_too(make_embedder, tiny_gemma):
    emb = make_embedder()
    emb.transform(["warm up"])
    model = emb.load()[0]
    handle = model.register_forward_pre_hook(
        lambda m, a, k: (_ for _ in ()).throw(ValueError("bad batch")), with_kwargs=True
    )
    try:
        with pytest.raises(DeviceWorkerError, match="device 'cpu': ValueError: bad batch"):
            emb.transform(["another text"])
    finally:
        handle.remove()


def test_lazy_loading_clone_and_pickle(make_embedder, is_loaded):
    emb = make_embedder()
    assert not is_loaded(emb)
    emb.fit(None)
    assert not is_loaded(emb)  # fit does not load weights
    X = emb.transform(["hello", "world"])
    assert is_loaded(emb)
    cloned = clone(emb)
    assert not is_loaded(cloned)
    blob = pickle.dumps(emb)
    assert len(blob) < 10_000
    restored = pickle.loads(blob)
    assert not is_loaded(restored)
    np.testing.assert_array_equal(restored.transform(["hello", "world"]), X)
    assert is_loaded(restored)  # reloaded from model_name_or_path
    emb.free()
    assert not is_loaded(emb)


def test_input_containers(make_embedder, tiny_gemma):
    emb = make_embedder()
    ref = emb.transform(["a b", "c d"])
    for X in (
        np.array(["a b", "c d"], dtype=object),
        pd.Series(["a b", "c d"]),
        pd.DataFrame({"text": ["a b", "c d"]}),
        np.array([["a b"], ["c d"]], dtype=object),
        ("a b", "c d"),
    ):
        np.testing.assert_allclose(emb.transform(X), ref, atol=1e-6)
    assert emb.transform([]).shape == (0, 64)


def test_bad_inputs(make_embedder, tiny_gemma):
    emb = make_embedder()
    with pytest.raises(ValueError, match="string object received"):
        emb.transform("just one string")
    with pytest.raises(ValueError, match="string object received"):
        emb.fit("just one string")
    with pytest.raises(ValueError, match="text at row 1: expected str, got float nan"):
        emb.transform(["ok", float("nan")])
    with pytest.raises(ValueError, match="raw arena rows .*ArenaTextFormatter first"):
        emb.transform(pd.DataFrame({"prompt": ["x"], "response_a": ["y"], "response_b": ["z"]}))
    with pytest.raises(ValueError, match="text_b at row 'r1': expected str, got int 5"):
        emb.transform(pd.DataFrame({"text_a": ["x", "y"], "text_b": ["z", 5]}, index=["r0", "r1"]))


def test_several_text_columns_are_embedded_side_by_side(make_embedder, tiny_gemma):
    emb = make_embedder()
    a, b = ["first answer", "second"], ["other one", "and another"]
    single = emb.transform(a + b)
    pairs = np.array([a, b], dtype=object).T  # (2 rows, 2 columns)
    emb.fit(pairs)
    X = emb.transform(pairs)
    assert X.shape == (2, 128) and emb.n_features_in_ == 2
    np.testing.assert_allclose(X[:, :64], single[:2], atol=1e-6)
    np.testing.assert_allclose(X[:, 64:], single[2:], atol=1e-6)
    frame = pd.DataFrame({"text_a": a, "text_b": b})
    out = emb.set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns[[0, 64]]) == ["text_a__gemmaembedder0", "text_b__gemmaembedder0"]
    np.testing.assert_allclose(out.to_numpy(), X, atol=1e-6)


def test_missing_model_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="no-such-model.*never downloads"):
        GemmaEmbedder(missing).fit(["x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        GemmaEmbedder(tmp_path / "empty").transform(["x"])
    with pytest.raises(ModelNotFoundError, match="org/not-cached"):
        GemmaEmbedder("org/not-cached").transform(["x"])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"quantization": "3bit"},
            "The 'quantization' parameter of GemmaEmbedder must be a str among .*'4bit'.*Got '3bit' instead",
        ),
        (
            {"pooling": "max2"},
            "The 'pooling' parameter of GemmaEmbedder must be .*Got 'max2' instead",
        ),
        ({"devices": ["cuda:7"]}, "device 'cuda:7' requested but only 0 CUDA devices are visible"),
        ({"devices": ["tpu"]}, "unknown device 'tpu'"),
        ({"devices": []}, "non-empty list"),
        (
            {"max_length": 0},
            "The 'max_length' parameter of GemmaEmbedder must be an int in the range",
        ),
        (
            {"torch_dtype": "fp8"},
            "The 'torch_dtype' parameter of GemmaEmbedder must be .*Got 'fp8' instead",
        ),
        ({"padding": "left"}, "The 'padding' parameter"),
    ],
)
def test_parameter_validation_in_fit_and_transform(tiny_gemma, params, match):
    import torch

    if torch.cuda.device_count() > 7 and "cuda:7" in str(params):
        pytest.skip("this machine has a cuda:7")
    emb = GemmaEmbedder(tiny_gemma, **params)  # __init__ never validates
    with pytest.raises(ValueError, match=match):
        emb.fit(["x"])
    with pytest.raises(ValueError, match=match):
        emb.transform(["x"])


def test_torch_dtype_object_and_bf16(make_embedder, tiny_gemma, arena_texts):
    import torch

    texts = list(arena_texts[:16])
    ref = make_embedder().transform(texts)
    bf16 = make_embedder(torch_dtype=torch.bfloat16).transform(texts)
    cos = (ref * bf16).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.99
    assert np.abs(ref - bf16).max() > 0  # really ran in bf16


def test_feature_names_and_set_output(make_embedder, is_loaded):
    emb = make_embedder()
    names = emb.get_feature_names_out()
    assert names.shape == (64,) and names[0] == "gemmaembedder0" and names[-1] == "gemmaembedder63"
    assert not is_loaded(emb)  # names come from the config only
    out = emb.set_output(transform="pandas").fit_transform(pd.Series(["a", "b"], index=[5, 9]))
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(names) and list(out.index) == [5, 9]


def test_set_params_after_loading_reloads(make_embedder, tiny_gemma):
    emb = make_embedder()
    a = emb.transform(["x y z"])
    emb.set_params(pooling="last")
    b = emb.transform(["x y z"])
    assert not np.allclose(a, b)
    first = emb.load()
    emb.set_params(devices=["cpu", "cpu"])
    emb.transform(["x y z", "other"])
    again = emb.load()
    assert len(again) == 2 and again[0] is not first[0]


def test_refit_replaces_what_an_earlier_fit_learnt(make_embedder, tiny_gemma):
    emb = make_embedder()
    emb.fit(pd.DataFrame({"text_a": ["x"], "text_b": ["y"]}))
    assert emb.n_features_in_ == 2 and list(emb.feature_names_in_) == ["text_a", "text_b"]
    assert len(emb.get_feature_names_out()) == 128
    emb.fit(["x", "y"])
    assert emb.n_features_in_ == 1 and not hasattr(emb, "feature_names_in_")
    assert len(emb.get_feature_names_out()) == 64
    emb.fit(None)
    assert not hasattr(emb, "n_features_in_")
    # non-string column labels are not feature names, as in scikit-learn
    emb.fit(pd.DataFrame([["x", "y"]]))
    assert emb.n_features_in_ == 2 and not hasattr(emb, "feature_names_in_")


def test_transform_refuses_another_number_of_columns_than_fitted(make_embedder):
    emb = make_embedder().fit(np.array([["answer a", "answer b"]], dtype=object))
    assert len(emb.get_feature_names_out()) == 128
    with pytest.raises(
        ValueError, match="X has 1 text column, but GemmaEmbedder was fitted with 2"
    ):
        emb.transform(["a single text"])
    assert emb.transform(np.array([["x", "y"]], dtype=object)).shape == (1, 128)
    # without fit (a stateless transformer), any number of columns is embedded
    assert make_embedder().transform(["a single text"]).shape == (1, 64)
