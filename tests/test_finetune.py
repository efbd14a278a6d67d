"""GemmaPreferenceClassifier: LoRA fine-tuning of the tiny random Gemma-2."""

from __future__ import annotations

import io
import json
import logging
import math
import shutil

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from torch.optim.optimizer import register_optimizer_step_pre_hook

import gemma_pref as gp
from gemma_pref import GemmaPreferenceClassifier

LABELS = ("crimson", "azure", "olive")  # the label word of class 0, 1, 2
WORDS = "river stone cloud lamp forest bridge candle window garden mirror".split()


def label_word_task(n, seed):
    """Texts whose first word tells the class; the rest is random words."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = [f"{LABELS[k]} " + " ".join(rng.choice(WORDS, int(rng.integers(6, 20)))) for k in y]
    return X, y


def _clf(path, **params):
    defaults = {
        "max_length": 32,
        "lora_r": 8,
        "learning_rate": 2e-3,
        "num_epochs": 3,
        "batch_size": 8,
        "gradient_accumulation_steps": 1,
        "dtype": "float32",
        "random_state": 0,
        "devices": "cpu",
    }
    return GemmaPreferenceClassifier(path, **{**defaults, **params})


@pytest.fixture(scope="module")
def task():
    return label_word_task(120, 0), label_word_task(60, 1)


@pytest.fixture(scope="module")
def fitted(tiny_gemma, task):
    (X, y), _ = task
    return _clf(tiny_gemma).fit(X, y)


def test_learns_the_label_word_and_predicts_proper_probabilities(fitted, task):
    _, (Xt, yt) = task
    proba = fitted.predict_proba(Xt)
    assert proba.shape == (60, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (fitted.predict(Xt) == yt).mean() >= 0.9
    assert fitted.score(Xt, yt) >= 0.9
    assert list(fitted.classes_) == [0, 1, 2]
    # a zero-initialised head starts at the uniform guess, and training lowers it
    assert fitted.loss_curve_[0] == pytest.approx(math.log(3), abs=1e-4)
    assert np.mean(fitted.loss_curve_[-5:]) < 0.5
    assert fitted.n_steps_ == len(fitted.loss_curve_) == 3 * 15  # 120 rows / 8, 3 epochs


def test_any_labels_follow_classes(tiny_gemma, task):
    (X, y), (Xt, yt) = task
    names = np.array(["tie", "a", "b"])[y]  # string labels, sorted: a, b, tie
    clf = _clf(tiny_gemma, num_epochs=2).fit(X, names)
    assert list(clf.classes_) == ["a", "b", "tie"]
    assert (clf.predict(Xt) == np.array(["tie", "a", "b"])[yt]).mean() >= 0.8


def test_same_random_state_same_adapter(tiny_gemma, fitted, task):
    (X, y), (Xt, _) = task
    again = _clf(tiny_gemma).fit(X, y)
    assert again.loss_curve_ == fitted.loss_curve_
    assert again.adapter_weights_ == fitted.adapter_weights_
    np.testing.assert_array_equal(again.predict_proba(Xt), fitted.predict_proba(Xt))
    other = _clf(tiny_gemma, random_state=1, num_epochs=1).fit(X, y)
    assert other.adapter_weights_ != fitted.adapter_weights_


def test_pickle_holds_the_adapter_not_the_base(tiny_gemma, fitted, task, is_loaded):
    _, (Xt, _) = task
    before = fitted.predict_proba(Xt)
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    base = (tiny_gemma / "model.safetensors").stat().st_size
    assert len(buf.getvalue()) < 0.2 * base
    buf.seek(0)
    loaded = joblib.load(buf)
    assert not is_loaded(loaded)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), before)
    assert is_loaded(loaded)


def test_another_checkpoint_at_the_path_is_refused(tiny_gemma, fitted, task, tmp_path):
    _, (Xt, _) = task
    own = shutil.copytree(tiny_gemma, tmp_path / "model")
    clf = clone(fitted).set_params(model_name_or_path=own)
    clf.__dict__.update(
        {k: v for k, v in vars(fitted).items() if k.endswith("_") and not k.startswith("_")}
    )
    clf.predict_proba(Xt[:2])  # the same files: accepted
    gp.testing.make_tiny_gemma(own, seed=1)  # other weights saved in place
    with pytest.raises(ValueError, match="is not the one this GemmaPreferenceClassifier"):
        clf.predict_proba(Xt[:2])


def test_two_replicas_predict_what_one_does(fitted, task):
    _, (Xt, _) = task
    one = fitted.predict_proba(Xt)
    two = clone(fitted).set_params(devices=["cpu", "cpu"])
    two.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    assert len(two.load()) == 2
    np.testing.assert_allclose(two.predict_proba(Xt), one, atol=1e-6)


def test_save_adapter_loads_with_peft_alone(tiny_gemma, fitted, task, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, (Xt, _) = task
    path = fitted.save_adapter(tmp_path / "adapter")
    names = sorted(p.name for p in path.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(names)
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_gemma.resolve())
    assert config["task_type"] == "SEQ_CLS" and config["r"] == 8
    base = AutoModelForSequenceClassification.from_pretrained(tiny_gemma, num_labels=3)
    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    base.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(base, path).eval()
    with torch.no_grad():
        enc = tok(Xt[:1], truncation=True, max_length=32, return_tensors="pt")
        logits = model(**enc).logits.numpy()
    np.testing.assert_allclose(logits, fitted.decision_function(Xt[:1]), atol=1e-4)
    with pytest.raises(FileExistsError, match="not an empty directory"):
        fitted.save_adapter(path)


def test_safe_format_round_trip(fitted, task, tmp_path):
    _, (Xt, _) = task
    saved = gp.save_safe(fitted, tmp_path / "safe")
    assert any(p.suffix == ".safetensors" for p in saved.iterdir())
    loaded = gp.load_safe(saved)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), fitted.predict_proba(Xt))


def test_cross_val_score_with_log_loss(tiny_gemma, task):
    (X, y), _ = task
    clf = _clf(tiny_gemma, num_epochs=2)
    scores = cross_val_score(clf, np.array(X, dtype=object), y, cv=3, scoring="neg_log_loss")
    assert scores.shape == (3,) and (scores < 0).all() and (-scores < math.log(3)).all()


def test_clone_and_params_store_only(tiny_gemma):
    clf = GemmaPreferenceClassifier(tiny_gemma, lora_r=4, quantization="4bit")
    params = clf.get_params()
    assert params["lora_r"] == 4 and params["quantization"] == "4bit"
    assert params["target_modules"] == "all-linear" and params["lora_alpha"] == 32
    assert clone(clf).get_params() == params
    assert not [k for k in vars(clf) if k.endswith("_")]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"lora_r": 0},
            "'lora_r' parameter of GemmaPreferenceClassifier must be an int in the range \\[1, inf\\)",
        ),
        (
            {"quantization": "2bit"},
            "'quantization' parameter of GemmaPreferenceClassifier must be a str among \\{.*'4bit'.*\\} or None",
        ),
        ({"learning_rate": -1.0}, "'learning_rate' parameter"),
        (
            {"dtype": "float8"},
            "'dtype' parameter of GemmaPreferenceClassifier must be a str among",
        ),
        (
            {"devices": ["tpu"]},
            "'devices' parameter of GemmaPreferenceClassifier has an unknown device 'tpu'",
        ),
        (
            {"target_modules": [1, 2]},
            "'target_modules' parameter of GemmaPreferenceClassifier must be",
        ),
        ({"warmup_ratio": 1.5}, "'warmup_ratio' parameter"),
    ],
)
def test_bad_parameters_are_rejected_in_fit(tiny_gemma, params, message):
    clf = GemmaPreferenceClassifier(tiny_gemma, **params)  # __init__ accepts anything
    with pytest.raises(ValueError, match=message):
        clf.fit(["a text", "another"], [0, 1])


def test_bad_inputs(tiny_gemma, fitted):
    with pytest.raises(ValueError, match="at least two classes"):
        _clf(tiny_gemma).fit(["one", "two"], [1, 1])
    with pytest.raises(ValueError, match="one text per row"):
        _clf(tiny_gemma).fit(np.array([["a", "b"]], dtype=object), [0])
    with pytest.raises(ValueError, match="text at row 1: expected str, got int"):
        fitted.predict_proba(["fine", 7])
    with pytest.raises(ValueError, match="string object received"):
        fitted.predict_proba("a bare string")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _clf(tiny_gemma).predict_proba(["not fitted"])


def test_float16_training_keeps_trainable_weights_in_float32_with_loss_scaling(
    tiny_gemma, task, caplog
):
    """The T4 path (float16 base, no quantization) on the CPU: every trainable
    weight (LoRA and the head's trained copy) is float32 and the loss scaler
    runs, so that the first optimizer step does not refuse float16 gradients."""
    (X, y), (Xt, yt) = task
    dtypes: set = set()

    def record(optimizer, args, kwargs):
        dtypes.update(p.dtype for group in optimizer.param_groups for p in group["params"])

    handle = register_optimizer_step_pre_hook(record)
    try:
        with caplog.at_level(logging.INFO, logger="gemma_pref"):
            clf = _clf(tiny_gemma, dtype="float16").fit(X, y)
    finally:
        handle.remove()
    assert dtypes == {torch.float32}
    scaling = [r.getMessage() for r in caplog.records if "loss scaling" in r.getMessage()]
    assert scaling and "float16" in scaling[0], caplog.text
    assert all(math.isfinite(v) for v in clf.loss_curve_)
    assert (clf.predict(Xt) == yt).mean() >= 0.9


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_training_on_cpu(tiny_gemma, task, quantization):
    # a dependency of gemma-pref, with CPU kernels: an error here is a failure
    import bitsandbytes as bnb

    (X, y), (Xt, yt) = task
    clf = _clf(tiny_gemma, quantization=quantization, dtype="auto", num_epochs=3)
    clf.fit(X, y)
    model = clf.load()[0]
    layer = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt)
    assert (clf.predict(Xt) == yt).mean() >= 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("torch_dtype", ["auto", "float16"])  # float16: the T4 path anywhere
def test_cuda_training_mixed_precision(tiny_gemma, task, torch_dtype):
    (X, y), (Xt, yt) = task
    clf = _clf(tiny_gemma, dtype=torch_dtype, devices="cuda:0").fit(X, y)
    assert (clf.predict(Xt) == yt).mean() >= 0.9
    assert all(math.isfinite(v) for v in clf.loss_curve_)


# ---------------------------------------------------------------- the recipe
def test_finetune_recipe_on_the_bundled_sample(tiny_gemma, arena):
    from transformers import AutoTokenizer

    train, test = arena.iloc[:80], arena.iloc[80:100]
    pipe = gp.make_preference_pipeline(
        tiny_gemma,
        recipe="finetune",
        max_length=64,
        lora_r=4,
        dtype="float32",
        devices="cpu",
        random_state=0,
    )
    assert list(pipe.named_steps) == ["formatter", "classifier"]
    formatter = pipe["formatter"]
    assert formatter.layout == "joint" and formatter.max_tokens == 64
    # every text fits the classifier's max_length, and answer B is never cut away
    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    texts = formatter.fit_transform(train)
    assert max(len(tok(t)["input_ids"]) for t in texts) <= 64
    report = gp.text.truncation_report(train, max_length=64, tokenizer=tok, formatter=formatter)
    assert ((report["response_b_kept_chars"] > 0) | (report["response_b_chars"] == 0)).all()
    plain = gp.text.truncation_report(train, max_length=64, tokenizer=tok)  # no budget
    assert (plain["response_b_kept_chars"] == 0).sum() > 10  # B lost without it
    pipe.fit(train, gp.data.labels_from_winner(train))
    proba = pipe.predict_proba(test)
    assert proba.shape == (20, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    # swap augmentation and test-time averaging with one argument
    swapped = gp.make_preference_pipeline(
        tiny_gemma,
        recipe="finetune",
        swap_augment=True,
        max_length=64,
        lora_r=4,
        dtype="float32",
        devices="cpu",
        random_state=0,
        num_epochs=1,
    )
    assert isinstance(swapped, gp.SwapABClassifier)
    swapped.fit(train.iloc[:40], gp.data.labels_from_winner(train.iloc[:40]))
    p = swapped.predict_proba(test)
    np.testing.assert_allclose(
        swapped.predict_proba(gp.models.swap_ab(test)), p[:, [1, 0, 2]], atol=1e-12
    )
