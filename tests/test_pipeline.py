from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from gemma_pref import make_preference_pipeline
from gemma_pref.data import labels_from_winner
from gemma_pref.embedding import clear_memory_cache
from gemma_pref.pipeline import make_catboost_classifier, make_recipe_formatter


def _pipe(path, recipe="embedding", **kw):
    # the pair texts under the token budget: none loses its answer to truncation
    # (which GemmaEmbedder reports with a TruncationWarning)
    formatter = make_recipe_formatter(recipe, path, max_length=96, budget=recipe == "embedding")
    return make_preference_pipeline(
        path,
        recipe=recipe,
        max_length=96,
        dtype="float32",
        classifier=make_catboost_classifier(iterations=30),
        formatter=formatter,
        **kw,
    )


def test_default_pipeline_settings():
    from gemma_pref import ArenaTextFormatter, PairDifferenceClassifier, PreferenceBlendClassifier
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    # the default recipe: the structure model and the embedding model, blended
    blend = make_preference_pipeline("some/dir", batch_size=4)
    assert isinstance(blend, PreferenceBlendClassifier)
    assert blend.embedder.batch_size == 4 and blend.structure == "auto"
    assert blend.formatter.layout == "pair"
    for name, value in PAIRWISE_DEFAULTS.items():
        assert blend.get_params()[f"embedder__{name}"] == value
    # the token budget (it scores better at 256 tokens, docs/quality.md), at the
    # embedder's length and counted with its model's tokenizer
    assert (blend.formatter.max_tokens, blend.formatter.tokenizer) == (256, "some/dir")
    short = make_preference_pipeline("x", max_length=64)
    assert short.embedder.max_length == short.formatter.max_tokens == 64
    fmt = ArenaTextFormatter(layout="pair", turns="all")
    assert make_preference_pipeline("x", formatter=fmt).formatter is fmt
    with pytest.raises(ValueError, match="recipe='pairwise'.*needs ArenaTextFormatter.*'joint'"):
        make_preference_pipeline("x", formatter=ArenaTextFormatter())
    with pytest.raises(ValueError, match="chooses its own models.*recipe='embedding'"):
        make_preference_pipeline("x", classifier=LogisticRegression())
    # the structure model alone: no model to load, nothing to set on one
    structure = make_preference_pipeline(recipe="structure")
    assert isinstance(structure, PreferenceBlendClassifier) and structure.embedder is None
    with pytest.raises(
        ValueError, match="loads no model.*\\['max_length', 'model_name_or_path'\\]"
    ):
        make_preference_pipeline("x", recipe="structure", max_length=64)

    # the embedding model alone: one text per answer, classify the difference
    pipe = make_preference_pipeline("some/dir", recipe="embedding", batch_size=4)
    assert list(pipe.named_steps) == ["formatter", "embedder", "classifier"]
    assert pipe.named_steps["embedder"].batch_size == 4
    assert pipe.named_steps["embedder"].max_length == PAIRWISE_DEFAULTS["max_length"]
    assert pipe.named_steps["formatter"].layout == "pair"
    assert isinstance(pipe.named_steps["classifier"], PairDifferenceClassifier)
    # the reference notebook's recipe: one text per row, CatBoost with its settings
    seed = make_preference_pipeline("some/dir", recipe="seed")
    assert seed.named_steps["formatter"].layout == "joint"
    assert seed.named_steps["embedder"].max_length == 1024
    params = seed.named_steps["classifier"].get_params()
    assert params["loss_function"] == "MultiClass"
    assert params["learning_rate"] == 0.03 and params["iterations"] == 1000
    # the device is chosen when the classifier is fitted, not when it is built
    assert "task_type" not in params
    lr = LogisticRegression()
    emb = make_preference_pipeline("x", recipe="embedding", classifier=lr)
    assert emb.named_steps["classifier"] is lr
    emb = make_preference_pipeline("x", recipe="embedding", formatter=fmt)
    assert emb.named_steps["formatter"] is fmt
    with pytest.raises(ValueError, match="'recipe' parameter.*'pairwise', 'embedding'.*'best'"):
        make_preference_pipeline("x", recipe="best")
    # a one-text-per-row formatter would feed PairDifferenceClassifier one vector,
    # which it would split in two halves: refused, with the ways out
    with pytest.raises(
        ValueError,
        match="needs ArenaTextFormatter\\(layout='pair'\\).*layout='joint'.*recipe='seed'",
    ):
        make_preference_pipeline("x", recipe="embedding", formatter=ArenaTextFormatter(turns="all"))
    joint = ArenaTextFormatter(turns="all")
    seed = make_preference_pipeline("x", recipe="seed", formatter=joint)
    assert seed.named_steps["formatter"] is joint
    # the same mistake with the classifier given explicitly
    with pytest.raises(ValueError, match="needs ArenaTextFormatter\\(layout='pair'\\)"):
        make_preference_pipeline("x", recipe="seed", classifier=PairDifferenceClassifier())
    with pytest.raises(ValueError, match="layout='joint'"):
        make_preference_pipeline(
            "x",
            recipe="embedding",
            classifier=PairDifferenceClassifier(),
            formatter=ArenaTextFormatter(),
        )
    # a formatter of another kind is the user's business
    from sklearn.preprocessing import FunctionTransformer

    other = FunctionTransformer()
    emb = make_preference_pipeline("x", recipe="embedding", formatter=other)
    assert emb.named_steps["formatter"] is other


def test_fit_predict_proba_columns_follow_labels(tiny_gemma, arena):
    df = arena.head(90)
    y = labels_from_winner(df)
    # a skewed target: 70% ties, 20% A wins, 10% B wins
    y = np.array([2] * 63 + [0] * 18 + [1] * 9)
    pipe = _pipe(tiny_gemma).fit(df, y)
    proba = pipe.predict_proba(df.head(30))
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(pipe.classes_) == [0, 1, 2]
    # column j is the probability of label j: the mean follows the class frequencies
    mean = proba.mean(axis=0)
    assert mean[2] > mean[0] > mean[1], mean
    # (CatBoost's predict returns a column)
    np.testing.assert_array_equal(np.ravel(pipe.predict(df.head(30))), np.argmax(proba, axis=1))


def test_joblib_round_trip_identical_and_small(is_loaded, tiny_gemma, arena, tmp_path):
    train, test = arena.head(80), arena.iloc[80:100]
    pipe = _pipe(tiny_gemma, memory_cache=False).fit(train, labels_from_winner(train))
    before = pipe.predict_proba(test)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    cb = tmp_path / "model.cbm"
    pipe.named_steps["classifier"].save_model(str(cb))
    # the file holds the parameters and the CatBoost model, never the weights
    assert path.stat().st_size < 5_000_000 + cb.stat().st_size
    buf = io.BytesIO()
    joblib.dump(pipe[:-1], buf)
    assert len(buf.getvalue()) < 50_000
    clear_memory_cache()
    loaded = joblib.load(path)
    assert not is_loaded(loaded.named_steps["embedder"])
    np.testing.assert_array_equal(loaded.predict_proba(test), before)


def test_cross_val_score_embeds_each_text_once(tiny_gemma, arena, forward_rows):
    rows = forward_rows
    df = arena.head(100)
    y = labels_from_winner(df)
    for recipe in ("seed", "embedding"):
        rows.clear()
        pipe = _pipe(tiny_gemma, recipe=recipe)
        scores = cross_val_score(pipe, df, y, cv=5, scoring="neg_log_loss")
        assert scores.shape == (5,) and np.isfinite(scores).all() and (scores < 0).all()
        # 5 folds each embed 80 train + 20 test rows: 500 rows without the cache;
        # with the cache each distinct text runs through the model exactly once
        distinct = set(pipe["formatter"].transform(df).ravel())
        assert sum(rows) == len(distinct)
        assert len(distinct) >= (100 if recipe == "seed" else 190)


def test_pipeline_with_logistic_regression(tiny_gemma, arena):
    df = arena.head(60)
    pipe = make_preference_pipeline(
        tiny_gemma,
        recipe="embedding",
        max_length=64,
        dtype="float32",
        classifier=LogisticRegression(max_iter=200),
        formatter=make_recipe_formatter("embedding", tiny_gemma, max_length=64, budget=True),
    )
    proba = pipe.fit(df, labels_from_winner(df)).predict_proba(df)
    assert proba.shape == (60, 3)


def test_set_output_pandas_through_pipeline(tiny_gemma, arena):
    pipe = _pipe(tiny_gemma, recipe="seed")[:-1].set_output(transform="pandas")
    out = pipe.fit_transform(arena.head(4))
    assert list(out.columns[:2]) == ["gemmaembedder0", "gemmaembedder1"]
    assert out.shape == (4, 64)
    assert list(out.index) == list(arena.head(4).index)
    pair = _pipe(tiny_gemma)[:-1].set_output(transform="pandas")
    out = pair.fit_transform(arena.head(4))
    assert out.shape == (4, 128)
    assert list(out.columns[[0, 63, 64, 127]]) == [
        "text_a__gemmaembedder0",
        "text_a__gemmaembedder63",
        "text_b__gemmaembedder0",
        "text_b__gemmaembedder63",
    ]


@pytest.mark.parametrize("bad", ["3bit"])
def test_pipeline_fit_validates_embedder(tiny_gemma, arena, bad):
    pipe = _pipe(tiny_gemma, quantization=bad)
    with pytest.raises(ValueError, match="'quantization' parameter"):
        pipe.fit(arena.head(10), labels_from_winner(arena.head(10)))


def test_catboost_device_is_chosen_at_fit_on_the_fitting_machine(arena):
    import pickle

    from gemma_pref import ArenaStructureFeatures
    from gemma_pref.models._catboost import catboost_gpu_available

    X = ArenaStructureFeatures().fit_transform(arena.head(120))
    y = labels_from_winner(arena.head(120))
    built = make_catboost_classifier(iterations=5)
    assert "task_type" not in built.get_params()  # nothing decided when built
    # shipped to another machine as a pickle, then fitted there
    shipped = pickle.loads(pickle.dumps(built))
    shipped.fit(X, y)
    expected = "GPU" if catboost_gpu_available() else "CPU"
    assert shipped.get_all_params()["task_type"] == expected
    assert "task_type" not in shipped.get_params()  # fit leaves the parameters
    shipped.fit(X, y)  # a refit decides again
    assert shipped.predict_proba(X).shape == (120, 3)
    explicit = make_catboost_classifier(iterations=5, task_type="CPU").fit(X, y)
    assert explicit.get_params()["task_type"] == "CPU"


def test_recipe_formatter_budget_defaults_to_the_recipes_length(tiny_gemma, arena):
    from gemma_pref.pipeline import make_recipe_formatter
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    length_of = {"pairwise": PAIRWISE_DEFAULTS["max_length"], "seed": 1024}
    for recipe, length in length_of.items():
        f = make_recipe_formatter(recipe, tiny_gemma, budget=True)
        assert (f.max_tokens, f.tokenizer) == (length, str(tiny_gemma))
    assert make_recipe_formatter("embedding", tiny_gemma).max_tokens is None
    assert make_recipe_formatter("pairwise", tiny_gemma).max_tokens == length_of["pairwise"]
    assert make_recipe_formatter("pairwise", tiny_gemma, budget=False).max_tokens is None
    assert make_recipe_formatter("finetune", tiny_gemma, budget=False).max_tokens is None
    # a budget of 24 tokens keeps every pair text within 24 tokens of the model
    texts = make_recipe_formatter("pairwise", tiny_gemma, max_length=24, budget=True).fit_transform(
        arena.iloc[:40]
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma)
    assert max(len(tokenizer(t)["input_ids"]) for t in texts.ravel()) <= 24
    with pytest.raises(TypeError, match="'budget' parameter of make_recipe_formatter"):
        make_recipe_formatter("pairwise", budget="yes")
