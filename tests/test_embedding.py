from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import gemma_pref as gp
from gemma_pref import GemmaEmbedder
from gemma_pref.exceptions import DeviceWorkerError, ModelNotFoundError

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
    with pytest.raises(ModelNotFoundError, match="no-such-model.*does not exist"):
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
            {"dtype": "fp8"},
            "The 'dtype' parameter of GemmaEmbedder must be .*Got 'fp8' instead",
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
    bf16 = make_embedder(dtype=torch.bfloat16).transform(texts)
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


# ------------------------------------------------------------------ layer=
GEMMA3_LAYER_TYPES = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]


@pytest.fixture(scope="module")
def deep_gemmas(tmp_path_factory):
    """Two tiny checkpoints of four decoder layers: Gemma 2 (sliding and global
    layers alternate) and Gemma 3 (layer types of its own, not its default
    pattern; a sliding window of 8 tokens; one rotary embedding per type)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from gemma_pref.testing import build_tiny_tokenizer, make_tiny_gemma

    gemma2 = make_tiny_gemma(tmp_path_factory.mktemp("gemma2-deep"), num_hidden_layers=4, seed=1)
    gemma3 = tmp_path_factory.mktemp("gemma3-deep")
    tokenizer = build_tiny_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=8,
        layer_types=GEMMA3_LAYER_TYPES,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    Gemma3ForCausalLM(config).save_pretrained(gemma3)
    torch.random.set_rng_state(state)
    tokenizer.save_pretrained(gemma3)
    return {"gemma2": gemma2, "gemma3": gemma3}


@pytest.fixture(scope="module")
def layer_texts(arena_texts):
    # real pair texts, longer than the Gemma 3 model's sliding window
    return list(arena_texts[:6]) + ["x"]


def _full_model_states(path, texts, max_length):
    """Each of the untruncated model's hidden_states, mean-pooled over real
    tokens (float32), and the model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).to(torch.float32)
    pooled = [((h * mask).sum(1) / mask.sum(1)).numpy() for h in out.hidden_states]
    return pooled, model


def _layer_of(key):
    parts = key.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else None


@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_layer_pools_that_hidden_state_of_the_full_model(
    make_embedder, deep_gemmas, layer_texts, arch
):
    path = deep_gemmas[arch]
    states, full = _full_model_states(path, layer_texts, 128)
    n = full.config.num_hidden_layers
    assert n == 4 and len(states) == n + 1
    full_keys = set(full.state_dict())
    for layer in [*range(n + 1), *range(-1, -n - 2, -1)]:
        emb = make_embedder(path, layer=layer)
        index = layer % (n + 1)
        np.testing.assert_allclose(
            emb.fit_transform(layer_texts), states[index], atol=2e-5, err_msg=f"layer={layer}"
        )
        (model,) = emb.load()
        run = n if index == n else max(1, index)
        assert len(model.layers) == run and model.config.num_hidden_layers == run
        if arch == "gemma3":
            assert model.config.layer_types == GEMMA3_LAYER_TYPES[:run]
        # the dropped layers' weights are not held (nor the unused final norm)
        kept = {k for k in full_keys if _layer_of(k) is None or _layer_of(k) < run}
        if run < n:
            kept.discard("norm.weight")
        assert set(model.state_dict()) == kept, f"layer={layer}"
        path_info = emb.compute_path()
        assert path_info["layers"] == ("last" if index == n else [index])
        assert path_info["decoder_layers"] == ("all" if run == n else run)


def test_last_layer_is_todays_vectors(make_embedder, deep_gemmas, layer_texts):
    path = deep_gemmas["gemma2"]
    states, _ = _full_model_states(path, layer_texts, 128)
    default = make_embedder(path).fit_transform(layer_texts)
    # the post-norm last_hidden_state, whichever way the last layer is named
    np.testing.assert_allclose(default, states[-1], atol=2e-5)
    for same in (-1, 4, -5 + 4, [4], (-1,), range(4, 5)):
        np.testing.assert_array_equal(
            make_embedder(path, layer=same).transform(layer_texts), default
        )


def test_several_layers_are_the_mean_of_each(make_embedder, deep_gemmas, layer_texts):
    path = deep_gemmas["gemma3"]
    states, _ = _full_model_states(path, layer_texts, 128)
    single = {i: make_embedder(path, layer=i).transform(layer_texts) for i in range(5)}
    for layers in (range(1, 4), [0, 4], (3, 1), [2, -1, 0]):
        emb = make_embedder(path, layer=layers)
        got = emb.fit_transform(layer_texts)
        indices = sorted(i % 5 for i in layers)
        np.testing.assert_allclose(got, np.mean([single[i] for i in indices], axis=0), atol=1e-6)
        np.testing.assert_allclose(got, np.mean([states[i] for i in indices], axis=0), atol=2e-5)
        (model,) = emb.load()
        assert len(model.layers) == (4 if 4 in indices else max(indices))
        assert emb.compute_path()["layers"] == indices


def test_a_fraction_is_that_share_of_the_depth(make_embedder, deep_gemmas, layer_texts):
    path = deep_gemmas["gemma3"]  # 4 decoder layers
    states, _ = _full_model_states(path, layer_texts, 128)
    for fraction, index in ((0.5, 2), (0.3, 1), (0.05, 1), (0.9, 4)):
        emb = make_embedder(path, layer=fraction)
        np.testing.assert_allclose(emb.fit_transform(layer_texts), states[index], atol=2e-5)
        expected = "last" if index == 4 else [index]
        assert emb.compute_path()["layers"] == expected, fraction
    assert clone(make_embedder(path, layer=0.5)).get_params()["layer"] == 0.5
    # a tuple of fractions averages those states; on a shallow model two may round
    # to the same state, which counts once
    band = make_embedder(path, layer=(0.25, 0.5, 0.6, 0.75))  # states 1, 2, 2, 3
    np.testing.assert_allclose(
        band.fit_transform(layer_texts),
        np.mean([states[i] for i in (1, 2, 3)], axis=0),
        atol=2e-5,
    )
    assert band.compute_path()["layers"] == [1, 2, 3]


def test_truncated_load_shows_no_load_report(make_embedder, deep_gemmas, capfd):
    capfd.readouterr()
    emb = make_embedder(deep_gemmas["gemma2"], layer=2, show_progress_bar=False)
    emb.transform(["some text"])
    err = capfd.readouterr().err
    # the dropped layers' weights are unused on purpose: no load report
    assert "LOAD REPORT" not in err and "UNEXPECTED" not in err, err
    (model,) = emb.load()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (5, r"must be an index in \[-5, 4\] for .*4 decoder layers.*Got 5 instead \(5 is out"),
        (-6, r"must be an index in \[-5, 4\].*Got -6 instead \(-6 is out of range\)"),
        (range(2, 9), r"in \[-5, 4\].*Got range\(2, 9\) instead \(5 is out of range\)"),
        ([], r"The 'layer' parameter of GemmaEmbedder must be an int .*Got \[\] .*it is empty"),
        ([1, "2"], r"The 'layer' parameter .*Got \[1, '2'\] instead \('2' is not an int or"),
        ([1, 1.5], r"The 'layer' parameter .*Got \[1, 1.5\] instead \(1.5 is not an int or"),
        ("9", r"The 'layer' parameter .*Got '9' instead \(a str\)"),
        (2.0, r"The 'layer' parameter .*given as a float, is a fraction .*Got 2.0 instead"),
        (0.0, r"fraction of the model's depth strictly between 0 and 1.*Got 0.0 instead"),
        (True, r"The 'layer' parameter .*Got True instead \(a bool\)"),
        ([1, -4], r"The 'layer' parameter of GemmaEmbedder names hidden state 1 twice"),
    ],
)
def test_bad_layer_is_named_in_fit_and_transform(deep_gemmas, layer, match):
    emb = GemmaEmbedder(deep_gemmas["gemma2"], layer=layer)  # __init__ never validates
    assert emb.get_params()["layer"] is layer
    with pytest.raises(ValueError, match=match):
        emb.fit(["x"])
    with pytest.raises(ValueError, match=match):
        emb.transform(["x"])
    with pytest.raises(ValueError, match=match):
        emb.compute_path()


def test_layer_clone_and_pickle(make_embedder, deep_gemmas, layer_texts):
    path = deep_gemmas["gemma2"]
    emb = make_embedder(path, layer=range(1, 3))
    X = emb.fit_transform(layer_texts)
    cloned = clone(emb)
    assert cloned.get_params()["layer"] == range(1, 3)
    np.testing.assert_array_equal(cloned.transform(layer_texts), X)
    restored = pickle.loads(pickle.dumps(emb))
    assert restored.layer == range(1, 3)
    np.testing.assert_array_equal(restored.transform(layer_texts), X)
    (model,) = restored.load()
    assert len(model.layers) == 2
    # a pickle of a version without the parameter pools the last layer
    old = make_embedder(path)
    default = old.transform(layer_texts)
    del old.layer
    unpickled = pickle.loads(pickle.dumps(old))
    assert unpickled.layer == -1
    np.testing.assert_array_equal(unpickled.transform(layer_texts), default)


def test_dtype_is_the_parameter_and_torch_dtype_still_works_with_a_warning(
    make_embedder, tiny_gemma, arena_texts, tmp_path
):
    texts = list(arena_texts[:3])
    new = GemmaEmbedder(tiny_gemma, max_length=48, dtype="float32", backend="torch")
    old = GemmaEmbedder(tiny_gemma, max_length=48, torch_dtype="float32", backend="torch")
    with pytest.warns(
        FutureWarning, match="'torch_dtype' parameter of GemmaEmbedder is deprecated"
    ):
        vectors = old.fit_transform(texts)
    np.testing.assert_array_equal(vectors, new.fit_transform(texts))
    from sklearn.utils._param_validation import InvalidParameterError

    both = GemmaEmbedder(tiny_gemma, dtype="bfloat16", torch_dtype="float32")
    with pytest.raises(InvalidParameterError, match="pass dtype only"):
        both.fit(texts)
    # a pickle of an earlier release held torch_dtype: it loads as dtype, quietly
    state = new.__getstate__()
    state["torch_dtype"] = state.pop("dtype")
    earlier = GemmaEmbedder.__new__(GemmaEmbedder)
    earlier.__setstate__(state)
    assert earlier.dtype == "float32" and earlier.torch_dtype is None
    np.testing.assert_array_equal(earlier.transform(texts), vectors)
    # and so does a save_safe directory of an earlier release
    import json

    folder = gp.save_safe(new, tmp_path / "emb")
    manifest = json.loads((folder / "manifest.json").read_text())
    params = manifest["estimator"]["params"]
    params["torch_dtype"] = params.pop("dtype")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert gp.load_safe(folder).dtype == "float32"
