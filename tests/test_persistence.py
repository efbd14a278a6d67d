"""Saving fitted pipelines: no weights, version stamps, and the safe format."""

from __future__ import annotations

import io
import json
import pathlib
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import gemma_pref
from gemma_pref import (
    ArenaStructureFeatures,
    ArenaTextFormatter,
    GemmaEmbedder,
    SwapABClassifier,
    make_preference_pipeline,
)
from gemma_pref.data import labels_from_winner
from gemma_pref.embedding import clear_memory_cache
from gemma_pref.exceptions import SafeFormatError, VersionMismatchWarning
from gemma_pref.persistence import load, load_safe, save, save_safe
from gemma_pref.persistence.safe import SAFE_TYPES
from gemma_pref.pipeline import make_catboost_classifier, make_recipe_formatter


@pytest.fixture(scope="module")
def split(arena):
    train, test = arena.head(80), arena.iloc[80:100]
    return train, labels_from_winner(train), test


@pytest.fixture(scope="module")
def fitted(tiny_gemma, split):
    """The preference pipeline (formatter, tiny Gemma-2, CatBoost), fitted."""
    train, y, _ = split
    pipe = make_preference_pipeline(
        tiny_gemma,
        recipe="embedding",
        max_length=96,
        dtype="float32",
        classifier=make_catboost_classifier(iterations=30),
        formatter=_budget(tiny_gemma),
    )
    return pipe.fit(train, y)


def _budget(path):
    """The pair texts under a 96-token budget: no answer is truncated away."""
    return make_recipe_formatter("embedding", path, max_length=96, budget=True)


@pytest.fixture(scope="module")
def fitted_custom(tiny_gemma, split):
    """Swap augmentation around a FeatureUnion, a scaler and a linear model."""
    train, y, _ = split
    features = FeatureUnion(
        [
            (
                "text",
                make_pipeline(
                    ArenaTextFormatter(turns="all", max_tokens=48, tokenizer=str(tiny_gemma)),
                    GemmaEmbedder(tiny_gemma, max_length=48, dtype="float32"),
                ),
            ),
            ("structure", ArenaStructureFeatures()),
        ]
    )
    model = SwapABClassifier(
        make_pipeline(features, StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
    )
    return model.fit(train, y)


def _weight_row(tiny_gemma):
    """256 bytes of the real checkpoint: one row of the embedding matrix."""
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_gemma / "model.safetensors"))
    (name,) = [k for k in weights if k.endswith("embed_tokens.weight")]
    return weights[name][7].astype(np.float32).tobytes()


def _evil_pickle(marker: pathlib.Path) -> bytes:
    """A pickle that creates ``marker`` when it is loaded."""

    class Evil:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    return pickle.dumps(Evil())


# ---------------------------------------------------------------- joblib/pickle
def test_saved_pipeline_holds_no_weights_and_records_versions(
    is_loaded, fitted, tiny_gemma, split, tmp_path
):
    _, _, test = split
    fitted.predict_proba(test)  # the replicas are loaded in memory now
    assert is_loaded(fitted.named_steps["embedder"])
    weights = (tiny_gemma / "model.safetensors").stat().st_size
    row = _weight_row(tiny_gemma)

    plain = tmp_path / "plain.joblib"
    joblib.dump(fitted, plain)  # uncompressed: weights would show verbatim
    ours = save(fitted, tmp_path / "ours.joblib", compress=0)
    cbm = tmp_path / "model.cbm"
    fitted.named_steps["classifier"].save_model(str(cbm))
    for path in (plain, ours):
        blob = path.read_bytes()
        assert row not in blob
        assert len(blob) < cbm.stat().st_size + 60_000 < weights
        assert b"_gemma_pref_version" in blob  # the embedder's stamp
    envelope = joblib.load(ours)
    assert envelope["versions"]["gemma_pref"] == gemma_pref.__version__
    assert envelope["versions"]["scikit-learn"] and envelope["versions"]["catboost"]
    without_classifier = io.BytesIO()
    pickle.dump(fitted[:-1], without_classifier)
    assert len(without_classifier.getvalue()) < 20_000


def test_save_load_round_trip_gives_identical_probabilities(is_loaded, fitted, split, tmp_path):
    _, _, test = split
    before = fitted.predict_proba(test)
    path = save(fitted, tmp_path / "sub" / "pipe.joblib")
    assert not list(path.parent.glob("*.tmp"))
    clear_memory_cache()
    loaded = load(path)
    assert not is_loaded(loaded.named_steps["embedder"])
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    # plain joblib keeps working, and gemma_pref.load reads it too
    joblib.dump(fitted, tmp_path / "plain.joblib")
    clear_memory_cache()
    np.testing.assert_array_equal(load(tmp_path / "plain.joblib").predict_proba(test), before)


def _other_version():
    v = gemma_pref.__version__
    return v[:-1] + ("8" if v[-1] == "9" else "9")  # same length, another version


def test_unpickling_under_another_version_warns(fitted, tmp_path):
    blob = pickle.dumps(fitted.named_steps["embedder"], protocol=4)
    other = _other_version()

    def short_str(text):  # pickle protocol 4 SHORT_BINUNICODE + memo PUT
        return b"\x8c" + bytes([len(text)]) + text.encode() + b"\x94"

    stamp = short_str("_gemma_pref_version") + short_str(gemma_pref.__version__)
    assert blob.count(stamp) == 1
    edited = blob.replace(stamp, short_str("_gemma_pref_version") + short_str(other))
    # the current version: silent
    pickle.loads(blob)
    with pytest.warns(
        VersionMismatchWarning,
        match=(
            rf"unpickle estimator GemmaEmbedder from gemma_pref version {other} when "
            rf"using version {gemma_pref.__version__}"
        ),
    ) as record:
        restored = pickle.loads(edited)
    (warning,) = [w.message for w in record]
    assert warning.estimator_name == "GemmaEmbedder" and warning.package == "gemma_pref"
    assert warning.original_version == other
    assert not hasattr(restored, "_gemma_pref_version")
    # gemma_pref.load of a plain file passes the same warning through
    (tmp_path / "edited.pkl").write_bytes(edited)
    with pytest.warns(VersionMismatchWarning, match="GemmaEmbedder"):
        load(tmp_path / "edited.pkl")


def test_load_warns_once_per_package_with_another_version(fitted, tmp_path):
    path = save(fitted, tmp_path / "pipe.joblib")
    envelope = joblib.load(path)
    envelope["versions"].update({"gemma_pref": "0.0.1", "scikit-learn": "0.24.2"})
    joblib.dump(envelope, tmp_path / "old.joblib")
    with pytest.warns(VersionMismatchWarning) as record:
        loaded = load(tmp_path / "old.joblib")
    found = sorted((w.message.package, w.message.original_version) for w in record)
    assert found == [("gemma_pref", "0.0.1"), ("scikit-learn", "0.24.2")]
    assert "saved with gemma_pref 0.0.1 and is loaded with gemma_pref" in str(record[0].message)
    assert type(loaded) is type(fitted)  # a recipe's PromptGroupedPipeline stays one


# ---------------------------------------------------------------- safe format
def test_safe_round_trip_of_the_preference_pipeline(fitted, split, tmp_path):
    _, _, test = split
    before = fitted.predict_proba(test)
    path = save_safe(fitted, tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["catboost-0.cbm", "manifest.json"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["versions"]["gemma_pref"] == gemma_pref.__version__
    clear_memory_cache()
    loaded = load_safe(path)
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    assert repr(loaded[:-1]) == repr(fitted[:-1])
    # CatBoost reports the parameters stored in its model file (verbose=0 for
    # verbose=False): equal values
    assert loaded[-1].get_params() == fitted[-1].get_params()
    embedder = loaded.named_steps["embedder"]
    assert embedder.get_params() == fitted.named_steps["embedder"].get_params()
    clone(loaded)  # a normal estimator


def test_safe_round_trip_of_the_default_blend(tiny_gemma, split, tmp_path):
    train, y, test = split
    model = make_preference_pipeline(tiny_gemma, max_length=96, dtype="float32")
    model.set_params(Cs=(1e-3, 1e-1), weights=(0.0, 0.5, 1.0))
    model.fit(train, y)
    before = model.predict_proba(test)
    path = save_safe(model, tmp_path / "blend")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "manifest.json"]
    clear_memory_cache()
    loaded = load_safe(path)
    assert type(loaded).__name__ == "PreferenceBlendClassifier"
    assert loaded.weights_ == model.weights_ and loaded.C_structure_ == model.C_structure_
    assert loaded.cv_log_loss_ == model.cv_log_loss_
    assert loaded.embedder_.get_params() == model.embedder_.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    clone(loaded)


def test_safe_round_trip_of_the_embedding_pipeline(tiny_gemma, split, tmp_path):
    train, y, test = split
    pipe = make_preference_pipeline(
        tiny_gemma,
        recipe="embedding",
        max_length=96,
        dtype="float32",
        formatter=_budget(tiny_gemma),
    )
    pipe.fit(train, y)
    before = pipe.predict_proba(test)
    path = save_safe(pipe, tmp_path / "pairwise")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "manifest.json"]
    clear_memory_cache()
    loaded = load_safe(path)
    assert type(loaded[-1]).__name__ == "PairDifferenceClassifier"
    assert loaded[-1].C_ == pipe[-1].C_ and loaded[-1].get_params()["Cs"] == pipe[-1].Cs
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    clone(loaded)


def test_safe_round_trip_of_a_custom_model(fitted_custom, split, tmp_path):
    _, _, test = split
    before = fitted_custom.predict_proba(test)
    path = save_safe(fitted_custom, tmp_path / "custom")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "manifest.json"]
    clear_memory_cache()
    loaded = load_safe(path)
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    scaler, linear = loaded.estimator_[1], loaded.estimator_[2]
    np.testing.assert_array_equal(scaler.scale_, fitted_custom.estimator_[1].scale_)
    np.testing.assert_array_equal(linear.coef_, fitted_custom.estimator_[2].coef_)
    assert list(loaded.estimator_[0].get_feature_names_out()) == list(
        fitted_custom.estimator_[0].get_feature_names_out()
    )
    # saving again over our own output replaces it, when asked to
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        save_safe(loaded, path)
    save_safe(loaded, path, overwrite=True)
    np.testing.assert_array_equal(load_safe(path).predict_proba(test), before)


def test_safe_loader_never_unpickles(fitted_custom, tmp_path):
    # control: the evil pickle does run code when unpickled
    control = tmp_path / "control-marker"
    pickle.loads(_evil_pickle(control))
    assert control.exists()

    # 1. a pickle or joblib file is refused without being opened as a pickle
    marker = tmp_path / "marker"
    evil_file = tmp_path / "model.joblib"
    evil_file.write_bytes(_evil_pickle(marker))
    with pytest.raises(SafeFormatError, match="not a directory written by gemma_pref.save_safe"):
        load_safe(evil_file)
    # 2. a safe directory whose arrays were replaced by pickled objects
    path = save_safe(fitted_custom, tmp_path / "custom")
    with np.load(path / "arrays.npz") as arrays:
        keys = list(arrays.files)
    evil = np.empty(1, dtype=object)
    evil[0] = _EvilObject(marker)
    np.savez(path / "arrays.npz", **{k: evil for k in keys})  # pickles the object
    with pytest.raises(SafeFormatError, match="needs pickle"):
        load_safe(path)
    assert not marker.exists()


class _EvilObject:
    """Creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _manifest_with(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda m: m["estimator"].update({"class": "builtins.eval"}),
            "class 'builtins.eval' is not one of the types load_safe builds",
        ),
        (
            lambda m: m["estimator"].update({"class": "os.system"}),
            "'os.system' is not one",
        ),
        (
            lambda m: m["estimator"]["params"].update(
                {"memory": {"__type__": "pickle", "data": "gASV"}}
            ),
            "unknown value type 'pickle'",
        ),
        (
            lambda m: m["estimator"]["params"].update({"evil": 1}),
            r"unknown parameters \['evil'\]",
        ),
        (
            lambda m: _embedder(m)["params"].update(
                {
                    "model_kwargs": {
                        "__type__": "dict",
                        "items": [["trust_remote_code", True]],
                    }
                }
            ),
            "trust_remote_code=True would run the checkpoint's Python code",
        ),
        (
            lambda m: _embedder(m)["state"].update({"__class__": "x"}),
            "bad attribute name '__class__'",
        ),
        (
            lambda m: m["estimator"]["params"]["steps"]["items"][2]["items"][1].update(
                {"model_file": "../x.cbm"}
            ),
            r"bad model file name '\.\./x\.cbm'",
        ),
        (
            lambda m: m.update({"format": "pickle"}),
            "is not a gemma_pref.save_safe manifest",
        ),
    ],
    ids=[
        "eval",
        "os.system",
        "unknown-value",
        "unknown-param",
        "trust_remote_code",
        "dunder-attribute",
        "path-escape",
        "format",
    ],
)
def test_safe_loader_refuses_what_it_does_not_build(fitted, tmp_path, edit, match):
    path = save_safe(fitted, tmp_path / "model")
    _manifest_with(path, edit)
    with pytest.raises(SafeFormatError, match=match):
        load_safe(path)


def _embedder(manifest):
    steps = manifest["estimator"]["params"]["steps"]["items"]
    return steps[1]["items"][1]


def test_load_safe_warns_on_other_versions(fitted, tmp_path):
    path = save_safe(fitted, tmp_path / "model")

    def old(m):
        m["versions"].update({"gemma_pref": "0.0.1", "catboost": "1.0.0"})

    _manifest_with(path, old)
    with pytest.warns(VersionMismatchWarning) as record:
        load_safe(path)
    assert sorted(w.message.package for w in record) == ["catboost", "gemma_pref"]


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            lambda p: make_pipeline(
                ArenaTextFormatter(template=lambda a, b, c: a), LogisticRegression()
            ),
            r"estimator\(Pipeline\)\.steps\[0\]\[1\]\(ArenaTextFormatter\)\.template is <function",
        ),
        (
            lambda p: make_pipeline(
                ArenaStructureFeatures(),
                FunctionTransformer(np.log1p),
                LogisticRegression(),
            ),
            r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer is not one of the types save_safe writes.*gemma_pref\.save",
        ),
        (
            lambda p: make_pipeline(
                ArenaTextFormatter(max_tokens=8, tokenizer=_tokenizer(p)),
                LogisticRegression(),
            ),
            r"\(ArenaTextFormatter\)\.tokenizer is .*: save_safe cannot write a \w+ without pickle.*a tokenizer path",
        ),
        (
            lambda p: GemmaEmbedder(p, model_kwargs={"device_map": object()}),
            r"\.model_kwargs\['device_map'\] is <object",
        ),
    ],
    ids=[
        "callable-template",
        "function-transformer",
        "tokenizer-object",
        "object-kwarg",
    ],
)
def test_save_safe_refuses_what_needs_pickle(tiny_gemma, tmp_path, model, match):
    with pytest.raises(SafeFormatError, match=match):
        save_safe(model(tiny_gemma), tmp_path / "model")
    assert not (tmp_path / "model").exists()


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def test_save_safe_never_overwrites_other_paths(tmp_path):
    other = tmp_path / "my-data"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="no save_safe manifest.*never replaced"):
        save_safe(ArenaStructureFeatures(), other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="is a directory; gemma_pref.load reads a joblib file"):
        load(other)


def test_safe_types_are_all_importable():
    import importlib

    for name, kind in SAFE_TYPES.items():
        cls = getattr(importlib.import_module(kind.module), kind.attr)
        assert name.endswith(kind.attr) and isinstance(cls, type)
        assert kind.load_class() is cls


def test_g_save_and_save_safe_replace_only_their_own_output(fitted_custom, split, tmp_path):
    """Case g of the input-trust issue: one rule for both formats; a user's
    file is never replaced, a file put into a save_safe folder never deleted."""
    _, _, test = split
    before = fitted_custom.predict_proba(test)
    mine = tmp_path / "results.joblib"
    mine.write_text("a user's own file")
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(FileExistsError):
            save(fitted_custom, mine, **kwargs)
    assert mine.read_text() == "a user's own file"
    # a joblib file that is not gemma-pref's envelope is not ours either
    joblib.dump({"format": "something else", "x": 1}, tmp_path / "other.joblib", compress=3)
    with pytest.raises(FileExistsError, match="no gemma-pref envelope"):
        save(fitted_custom, tmp_path / "other.joblib", overwrite=True)
    ours = save(fitted_custom, tmp_path / "ours.joblib")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        save(fitted_custom, ours)
    for compress in (0, 3):
        save(fitted_custom, ours, overwrite=True, compress=compress)
        np.testing.assert_array_equal(load(ours).predict_proba(test), before)
    # save_safe: the user's file in the folder stops the replacement and stays
    folder = save_safe(fitted_custom, tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == ["arrays.npz", "manifest.json"]
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"also holds \['notes.txt'\].*never replaced"):
        save_safe(fitted_custom, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    np.testing.assert_array_equal(load_safe(folder).predict_proba(test), before)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_g_plots_write_through_a_name_of_their_own(tmp_path):
    from gemma_pref.evaluation.plots import plot_reliability

    out = tmp_path / "cv.reliability.png"
    fixed = tmp_path / ".cv.reliability.png.tmp"  # the old fixed temporary name
    fixed.write_text("a user's file")
    y = np.array([0, 1, 2, 0])
    plot_reliability(y, np.full((4, 3), 1 / 3), out)
    assert out.read_bytes().startswith(b"\x89PNG") and fixed.read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [fixed.name, out.name]


def test_l_pyarrow_comes_with_the_base_install():
    """Case l: Parquet is an advertised input, so pyarrow is a base dependency."""
    from importlib.metadata import requires

    base = [r for r in requires("gemma-pref") if "extra ==" not in r]
    assert any(r.replace(" ", "").startswith("pyarrow>=") for r in base), base
