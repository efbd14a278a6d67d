"""model_steps / set_model_params: the model step of a pipeline, whatever wraps it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

import gemma_pref as gp
from gemma_pref.pipeline import make_recipe_formatter, model_steps, set_model_params

EMBEDDER_DEFAULTS = {"max_length": 32}


class EmbedThenClassify(ClassifierMixin, BaseEstimator):
    """A meta-estimator holding the embedder as a parameter and a fitted clone:
    nothing in model_steps knows it."""

    def __init__(self, embedder=None, classifier=None):
        self.embedder = embedder
        self.classifier = classifier

    def fit(self, X, y):
        self.embedder_ = clone(self.embedder).fit(X)
        self.classifier_ = clone(self.classifier).fit(self.embedder_.transform(X), y)
        self.classes_ = self.classifier_.classes_
        return self

    def predict_proba(self, X):
        return self.classifier_.predict_proba(self.embedder_.transform(X))


def test_finds_the_model_in_pipelines_and_wrappers(make_embedder, tiny_gemma):
    embedder = make_embedder()
    pipe = Pipeline([("formatter", gp.ArenaTextFormatter()), ("embedder", embedder)])
    assert model_steps(pipe) == [embedder]
    assert model_steps(embedder) == [embedder]
    assert model_steps(gp.SwapABClassifier(pipe)) == [embedder]
    union = FeatureUnion([("a", embedder), ("b", "drop")])
    assert model_steps(Pipeline([("u", union), ("lr", LogisticRegression())])) == [embedder]
    assert model_steps(LogisticRegression()) == []
    finetune = gp.make_preference_pipeline(tiny_gemma, recipe="finetune", swap_augment=True)
    (clf,) = model_steps(finetune)
    assert isinstance(clf, gp.GemmaPreferenceClassifier)


def test_fitted_wrappers_give_template_and_fitted_copy_once_each(make_embedder, arena):
    rows, y = arena.iloc[:24], gp.data.labels_from_winner(arena.iloc[:24])
    settings = dict(max_length=32, dtype="float32", backend="torch", devices="cpu")
    path = make_embedder().model_name_or_path
    # the default recipe in SwapAB: the template's embedder, the fitted blend's
    # embedder parameter and its fitted embedder_, each once
    blend = gp.make_preference_pipeline(path, swap_augment=True, **settings).fit(rows, y)
    found = model_steps(blend)
    assert len(found) == 3 and len({id(s) for s in found}) == 3
    assert found[-1] is blend.estimator_.embedder_
    # the pair texts under the token budget: no answer truncated away (TruncationWarning)
    budget = make_recipe_formatter("embedding", path, max_length=32, budget=True)
    pipe = gp.make_preference_pipeline(
        path, recipe="embedding", swap_augment=True, formatter=budget, **settings
    )
    pipe.fit(rows, y)
    steps = model_steps(pipe)
    assert len(steps) == 2 and steps[0] is not steps[1]  # estimator, estimator_
    assert all(isinstance(s, gp.GemmaEmbedder) for s in steps)
    before = pipe.predict_proba(rows)
    assert set_model_params(pipe, devices=["cpu", "cpu"], batch_size=4) is pipe
    assert all(s.devices == ["cpu", "cpu"] and s.batch_size == 4 for s in steps)
    fitted = steps[1]
    assert len(fitted.load()) == 2  # the fitted copy, which predicts, runs two replicas
    np.testing.assert_allclose(pipe.predict_proba(rows), before, atol=1e-6)


def test_a_new_meta_estimator_is_searched_through_params_and_fitted_attributes(
    make_embedder, arena_texts
):
    meta = EmbedThenClassify(make_embedder(), LogisticRegression(max_iter=200))
    assert model_steps(meta) == [meta.embedder]
    meta.fit(list(arena_texts[:12]), [0, 1, 2] * 4)
    steps = model_steps(meta)
    assert steps == [meta.embedder, meta.embedder_]
    set_model_params(meta, dtype="bfloat16")
    assert meta.embedder.dtype == meta.embedder_.dtype == "bfloat16"
    assert np.isfinite(meta.predict_proba(list(arena_texts[:3]))).all()


def test_set_model_params_errors_and_sets_nothing_on_a_bad_name(make_embedder):
    embedder = make_embedder()
    pipe = gp.SwapABClassifier(Pipeline([("embedder", embedder)]))
    with pytest.raises(ValueError, match="'no_such' is not a parameter of GemmaEmbedder"):
        set_model_params(pipe, devices="cpu", no_such=1)
    assert embedder.devices == "auto"  # nothing set
    with pytest.raises(ValueError, match="LogisticRegression holds no GemmaEmbedder"):
        set_model_params(LogisticRegression(), devices="cpu")
