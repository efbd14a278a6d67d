"""PreferenceBlendClassifier: the structure model, the embedding model, and their blend."""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.model_selection import cross_val_score
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

import gemma_pref as gp
from gemma_pref import ArenaTextFormatter, PromptGroupKFold
from gemma_pref.data import labels_from_winner
from gemma_pref.models import swap_ab
from gemma_pref.models.blend import BLEND_CS, PreferenceBlendClassifier

FOLDS = PromptGroupKFold(5, shuffle=True, random_state=0)


def _prior_log_loss(y_train, y_test):
    prior = np.bincount(y_train, minlength=3) / len(y_train)
    return log_loss(y_test, np.tile(prior, (len(y_test), 1)), labels=[0, 1, 2])


def _length_embedder(noise: float):
    """Texts -> [e_a | e_b]: each answer's log length in 4 dims, plus noise.

    A real, deterministic transformer of the (n, 2) pair texts (the noise of a
    text is seeded by its hash), whose vectors carry the length signal.
    """

    def vector(text):
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        return np.log1p(len(text)) + noise * rng.normal(size=4)

    def embed(texts):
        texts = np.asarray(texts, dtype=object)
        return np.array([np.concatenate([vector(a), vector(b)]) for a, b in texts])

    return FunctionTransformer(embed)


class NoiseStructure(TransformerMixin, BaseEstimator):
    """Structure features that carry nothing: a hash of each answer, side by side."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        def noise(cells):
            return [(zlib.crc32(str(c).encode()) % 1000) / 1000.0 for c in cells]

        return np.column_stack([noise(X["response_a"]), noise(X["response_b"])])

    def swap_map(self):
        return np.array([1, 0]), np.ones(2)


def test_structure_model_alone_beats_the_prior_and_is_exactly_symmetric(arena):
    y = labels_from_winner(arena)
    clf = PreferenceBlendClassifier()
    with pytest.raises(NotFittedError):
        clf.predict_proba(arena.head(2))
    assert not hasattr(clf, "weights_")
    losses = -cross_val_score(clf, arena, y, cv=FOLDS, scoring="neg_log_loss")
    priors = [_prior_log_loss(y[tr], y[te]) for tr, te in FOLDS.split(arena, y)]
    # real signal: better than the class prior on the mean of 5 prompt-grouped folds
    assert losses.mean() < np.mean(priors) - 0.01

    clf.fit(arena, y)
    assert clf.weights_ == {"structure": 1.0}
    assert clf.C_embedding_ is None and clf.embedder_ is None
    assert clf.C_structure_ in BLEND_CS
    assert set(clf.cv_log_loss_) == {"structure", "blend"}
    assert clf.cv_log_loss_["blend"] == clf.cv_log_loss_["structure"]
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    p = clf.predict_proba(arena)
    swapped = clf.predict_proba(swap_ab(arena))
    np.testing.assert_allclose(swapped, p[:, [1, 0, 2]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(arena), np.argmax(p, axis=1))


def test_blend_weight_follows_which_model_carries_the_signal(arena):
    y = labels_from_winner(arena)
    Cs = (1e-3, 1e-2, 1e-1)
    noise = PreferenceBlendClassifier(_length_embedder(noise=30.0), Cs=Cs).fit(arena, y)
    signal = PreferenceBlendClassifier(
        _length_embedder(noise=0.05), structure=NoiseStructure(), Cs=Cs
    ).fit(arena, y)
    for clf in (noise, signal):
        scores = clf.cv_log_loss_
        assert set(scores) == {"structure", "embedding", "blend"}
        # w = 0 and w = 1 are candidates: the blend is never worse than either model
        assert scores["blend"] <= min(scores["structure"], scores["embedding"]) + 1e-12
        assert clf.C_embedding_ in Cs and clf.C_structure_ in Cs
        assert isinstance(clf.formatter_, ArenaTextFormatter)
        assert clf.formatter_.layout == "pair"
    # noisy embeddings next to real structure: the structure carries the blend,
    # which gains next to nothing over it (a near-constant model only shifts the
    # classes' balance)
    assert noise.weights_["structure"] > noise.weights_["embedding"]
    assert noise.cv_log_loss_["blend"] > noise.cv_log_loss_["structure"] - 0.005
    # length-carrying embeddings next to hashed noise: the other way round
    assert signal.weights_["embedding"] > 2 * signal.weights_["structure"]
    assert signal.cv_log_loss_["blend"] > signal.cv_log_loss_["embedding"] - 0.005
    assert noise.cv_log_loss_["embedding"] > signal.cv_log_loss_["embedding"]
    assert signal.cv_log_loss_["structure"] > noise.cv_log_loss_["structure"]
    p = signal.predict_proba(arena.head(50))
    np.testing.assert_allclose(
        signal.predict_proba(swap_ab(arena.head(50))), p[:, [1, 0, 2]], atol=1e-12
    )


@pytest.mark.parametrize("tie_features, width", [("none", 4), ("abs", 8), ("cosine", 6)])
def test_tie_features_widen_the_embedding_design(arena, tie_features, width):
    df = arena.head(120)
    y = labels_from_winner(df)
    clf = PreferenceBlendClassifier(
        _length_embedder(noise=0.5), structure="drop", tie_features=tie_features
    ).fit(df, y)
    assert clf.weights_ == {"embedding": 1.0}
    assert clf.structure_model_ is None and clf.C_structure_ is None
    assert clf.embedding_model_[-1].coef_.shape == (3, width)
    p = clf.predict_proba(df)
    np.testing.assert_allclose(clf.predict_proba(swap_ab(df)), p[:, [1, 0, 2]], atol=1e-12)


def test_blend_with_a_gemma_embedder_clones_pickles_and_cross_validates(make_embedder, arena):
    df = arena.head(60)
    y = labels_from_winner(df)
    clf = PreferenceBlendClassifier(
        make_embedder(max_length=32), Cs=(0.01, 1.0), weights=(0.0, 0.5, 1.0)
    )
    assert clone(clf).get_params()["embedder__max_length"] == 32
    clf.set_params(embedder__max_length=48)
    assert clf.embedder.max_length == 48
    # 48 tokens leave some rows' two texts the same prompt prefix: reported, and fitted
    with pytest.warns(gp.exceptions.TruncationWarning, match="max_length=48 tokens"):
        scores = cross_val_score(clf, df, y, cv=PromptGroupKFold(3), scoring="neg_log_loss")
    assert np.isfinite(scores).all()

    with pytest.warns(gp.exceptions.TruncationWarning, match="answer A in"):
        clf.fit(df, y)
    assert set(clf.weights_.values()) <= {0.0, 0.5, 1.0}
    assert clf.embedder_ is not clf.embedder and clf.embedder_.max_length == 48
    with pytest.warns(gp.exceptions.TruncationWarning):
        p = clf.predict_proba(df)
    blob = pickle.dumps(clf)
    assert len(blob) < 200_000  # settings and two logistic regressions, no weights
    again = pickle.loads(blob)
    with pytest.warns(gp.exceptions.TruncationWarning):
        np.testing.assert_allclose(again.predict_proba(df), p, rtol=1e-6)


def test_default_recipe_end_to_end_on_a_tiny_gemma(tiny_gemma, arena, tmp_path):
    import joblib

    y = labels_from_winner(arena)
    train, test = arena.iloc[:200], arena.iloc[200:230]
    model = gp.make_preference_pipeline(tiny_gemma, max_length=48, dtype="float32")
    model.set_params(Cs=(1e-3, 1e-1))
    model.fit(train, y[:200])
    assert set(model.weights_) == {"structure", "embedding"}
    assert model.embedder_.max_length == 48
    proba = model.predict_proba(test)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(model.predict_proba(swap_ab(test)), proba[:, [1, 0, 2]], atol=1e-6)
    path = tmp_path / "blend.joblib"
    joblib.dump(model, path)
    assert path.stat().st_size < 1_000_000
    np.testing.assert_allclose(joblib.load(path).predict_proba(test), proba, atol=1e-6)


def test_two_classes_without_ties(arena):
    df = arena[labels_from_winner(arena) != 2]
    y = labels_from_winner(df)
    clf = PreferenceBlendClassifier().fit(df, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    p = clf.predict_proba(df.head(5))
    assert p.shape == (5, 2)
    np.testing.assert_allclose(clf.predict_proba(swap_ab(df.head(5))), p[:, ::-1], atol=1e-12)


def test_bad_settings_and_inputs_are_clear_errors(arena):
    df = arena.head(40)
    y = labels_from_winner(df)
    with pytest.raises(InvalidParameterError, match="'tie_features' parameter"):
        PreferenceBlendClassifier(tie_features="both").fit(df, y)
    with pytest.raises(InvalidParameterError, match="'structure' parameter"):
        PreferenceBlendClassifier(structure="off").fit(df, y)
    with pytest.raises(ValueError, match="needs at least one model"):
        PreferenceBlendClassifier(structure="drop").fit(df, y)
    with pytest.raises(ValueError, match="'Cs' parameter .* must be positive"):
        PreferenceBlendClassifier(Cs=[0.1, 0.0]).fit(df, y)
    with pytest.raises(ValueError, match="'weights' parameter .* non-negative exponents"):
        PreferenceBlendClassifier(weights=[0.5, -1.0]).fit(df, y)
    with pytest.raises(ValueError, match="layout='pair'.*layout='joint'"):
        PreferenceBlendClassifier(_length_embedder(0.1), formatter=ArenaTextFormatter()).fit(df, y)
    with pytest.raises(ValueError, match="Missing column.*'response_b'"):
        PreferenceBlendClassifier().fit(df.drop(columns="response_b"), y)
    with pytest.raises(ValueError, match="40 rows but y has 39 labels"):
        PreferenceBlendClassifier().fit(df, y[:-1])
    with pytest.raises(ValueError, match="at least 2 rows of each class.*\\{0: 1, 1: 10"):
        PreferenceBlendClassifier().fit(df.head(11), np.r_[0, np.ones(10, dtype=int)])
    with pytest.raises(ValueError, match="y at position 3: expected 0"):
        PreferenceBlendClassifier().fit(df, np.r_[y[:3], 7, y[4:]])
    with pytest.raises(ValueError, match="side by side"):
        PreferenceBlendClassifier(FunctionTransformer(lambda t: np.ones((len(t), 3)))).fit(df, y)


def test_exported_from_the_package():
    assert gp.PreferenceBlendClassifier is PreferenceBlendClassifier
