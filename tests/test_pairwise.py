"""The embedding recipe: one text per answer, a classifier of their difference."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import cross_val_score

import gemma_pref as gp
from gemma_pref import PairDifferenceClassifier
from gemma_pref.pipeline import make_recipe_formatter


def _hidden_quality(n, width=6, seed=0, noise=0.5):
    """Rows whose label follows the difference of two hidden answer scores."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=(n, 2))
    e_a = quality[:, :1] + noise * rng.normal(size=(n, width))
    e_b = quality[:, 1:] + noise * rng.normal(size=(n, width))
    gap = quality[:, 0] - quality[:, 1]
    y = np.where(np.abs(gap) < 0.4, 2, (gap < 0).astype(int))
    return np.hstack([e_a, e_b]), y


def test_learns_from_the_difference_and_beats_the_prior():
    X, y = _hidden_quality(600)
    clf = PairDifferenceClassifier().fit(X[:400], y[:400])
    prior = np.bincount(y[:400], minlength=3) / 400
    loss = log_loss(y[400:], clf.predict_proba(X[400:]), labels=[0, 1, 2])
    prior_loss = log_loss(y[400:], np.tile(prior, (200, 1)), labels=[0, 1, 2])
    assert loss < prior_loss - 0.2
    assert min(gp.models.pairwise.DEFAULT_CS) <= clf.C_ <= max(gp.models.pairwise.DEFAULT_CS)
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.n_features_in_ == 12


def test_swapping_the_answers_swaps_the_probabilities_exactly():
    X, y = _hidden_quality(300, seed=1)
    for clf in (PairDifferenceClassifier(), PairDifferenceClassifier(LogisticRegression())):
        clf.fit(X, y)
        p = clf.predict_proba(X)
        swapped = clf.predict_proba(np.hstack([X[:, 6:], X[:, :6]]))
        np.testing.assert_allclose(swapped, p[:, [1, 0, 2]], atol=1e-12)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_custom_estimator_sees_both_signs_of_the_difference():
    X, y = _hidden_quality(200, seed=2)
    clf = PairDifferenceClassifier(LogisticRegression(C=0.5)).fit(X, y)
    assert clf.C_ is None
    inner = clf.estimator_
    assert inner.n_features_in_ == 6
    # trained on d and -d: the intercepts of A-wins and B-wins are equal
    assert abs(inner.intercept_[0] - inner.intercept_[1]) < 1e-3


def test_without_ties_two_classes_are_learned():
    X, y = _hidden_quality(200, seed=3)
    keep = y != 2
    clf = PairDifferenceClassifier(Cs=(0.1,), cv=2).fit(X[keep], y[keep])
    assert list(clf.classes_) == [0, 1]
    assert clf.predict_proba(X[:5]).shape == (5, 2)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((4, 3)), [0, 1, 2, 0], "even number of columns"),
        (np.zeros((4, 4)), [0, 1, 5, 0], "y at position 2: expected 0"),
        (np.zeros((4, 4)), [2, 2, 2, 2], "at least two classes"),
        (np.zeros((4, 4)), None, "requires y"),
    ],
)
def test_bad_input_is_named(X, y, match):
    with pytest.raises(ValueError, match=match):
        PairDifferenceClassifier(cv=2).fit(X, y)


def test_nan_and_width_mismatch_are_refused():
    X, y = _hidden_quality(100, seed=4)
    clf = PairDifferenceClassifier(Cs=(0.1,), cv=2).fit(X, y)
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict_proba(bad)
    with pytest.raises(ValueError, match="12 features"):
        clf.predict_proba(X[:, :10])
    with pytest.raises(ValueError, match="'Cs' parameter"):
        PairDifferenceClassifier(Cs=(0.0, 1.0), cv=2).fit(X, y)


def test_embedding_recipe_is_the_pair_difference_pipeline(tiny_gemma):
    pipe = gp.make_preference_pipeline(tiny_gemma, recipe="embedding", max_length=64)
    assert list(pipe.named_steps) == ["formatter", "embedder", "classifier"]
    assert pipe["formatter"].layout == "pair"
    assert isinstance(pipe["classifier"], PairDifferenceClassifier)
    seed = gp.make_preference_pipeline(tiny_gemma, recipe="seed")
    assert seed["formatter"].layout == "joint"
    from catboost import CatBoostClassifier

    assert isinstance(seed["classifier"], CatBoostClassifier)
    with pytest.raises(ValueError, match="'recipe'.*'pairwise', 'embedding'.*'best'"):
        gp.make_preference_pipeline(tiny_gemma, recipe="best")


def test_pairwise_pipeline_end_to_end(tiny_gemma, arena, tmp_path):
    y = gp.data.labels_from_winner(arena)
    train, test = arena.iloc[:240], arena.iloc[240:270]
    budget = make_recipe_formatter("embedding", tiny_gemma, max_length=64, budget=True)
    pipe = gp.make_preference_pipeline(
        tiny_gemma, recipe="embedding", max_length=64, formatter=budget
    )
    pipe.fit(train, y[:240])
    proba = pipe.predict_proba(test)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the embedder returns both answers' vectors side by side
    hidden = pipe["embedder"].transform(pipe["formatter"].transform(test[:2])).shape[1] // 2
    assert pipe["classifier"].n_features_in_ == 2 * hidden
    # swapping response_a and response_b in the raw rows swaps A and B wins
    swapped = pipe.predict_proba(gp.models.swap_ab(test))
    np.testing.assert_allclose(swapped, proba[:, [1, 0, 2]], atol=1e-5)
    # joblib round trip: same probabilities, no weights in the file
    path = tmp_path / "pairwise.joblib"
    joblib.dump(pipe, path)
    assert path.stat().st_size < 5_000_000
    np.testing.assert_allclose(joblib.load(path).predict_proba(test), proba, atol=1e-6)


def test_pairwise_cross_val_score(tiny_gemma, arena):
    y = gp.data.labels_from_winner(arena)
    rows = arena.iloc[:150]
    budget = make_recipe_formatter("embedding", tiny_gemma, max_length=48, budget=True)
    pipe = gp.make_preference_pipeline(
        tiny_gemma, recipe="embedding", max_length=48, formatter=budget
    )
    pipe.set_params(classifier__Cs=(1e-3, 1e-1), classifier__cv=3)
    scores = cross_val_score(
        clone(pipe), rows, y[:150], cv=gp.PromptGroupKFold(3), scoring="neg_log_loss"
    )
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert (-scores < 1.5).all()  # never worse than a wildly overconfident model


def test_estimator_contracts_on_even_width_data():
    """What scikit-learn's generic checks would test, had their data an even width
    (tests/test_common.py lists those checks as expected failures for that reason)."""
    import copy
    import pickle

    X, y = _hidden_quality(240, width=4)
    clf = PairDifferenceClassifier(Cs=(0.01, 0.1, 1.0), cv=3)
    params = copy.deepcopy(clf.get_params())
    clf.fit(X, y)
    # fit leaves the parameters as given and only adds trailing-underscore state
    assert clf.get_params().keys() == params.keys()
    assert all(clf.get_params()[k] == v for k, v in params.items())
    assert {k for k in vars(clf) if k not in params} <= {
        "estimator_",
        "C_",
        "cv_log_loss_",
        "classes_",
        "n_features_in_",
    }
    # prediction does not change the fitted state
    state = pickle.dumps(clf)
    proba = clf.predict_proba(X)
    clf.predict(X)
    assert pickle.dumps(clf) == state
    # pickling keeps predictions exactly
    np.testing.assert_array_equal(pickle.loads(state).predict_proba(X), proba)
    # rows are predicted independently: subsets and reordering change nothing
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(clf.predict_proba(X[order]), proba[order], atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X[:7]), proba[:7], atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X[:1]), proba[:1], atol=1e-12)
    # Fortran-ordered and float32 input give the same result
    np.testing.assert_allclose(clf.predict_proba(np.asfortranarray(X)), proba, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X.astype(np.float32)), proba, atol=1e-5)
    # a 1-D row is refused, as scikit-learn estimators do
    with pytest.raises(ValueError, match="2D array"):
        clf.predict_proba(X[0])
    # refitting a clone on the same data gives the same model
    again = clone(clf).fit(X, y)
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-12)
    assert again.C_ == clf.C_


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_c_search_scales_inside_the_folds_and_takes_the_best_mean_score(seed):
    from sklearn.model_selection import GridSearchCV, GroupKFold

    # few noisy rows, many columns: the folds disagree on the best C
    X, y = _hidden_quality(120, width=60, seed=seed, noise=3.0)
    Cs = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    clf = PairDifferenceClassifier(Cs=Cs, cv=4).fit(X, y)
    # the reference: a scaler + logistic regression searched as one pipeline
    # (so the scaler is fitted inside each fold), rows and swapped copies
    # together, the C with the best mean log loss, refitted on all rows
    d = X[:, :60] - X[:, 60:]
    D, Y = np.vstack([d, -d]), np.concatenate([y, gp.data.swap_labels(y)])
    groups = np.concatenate([np.arange(120), np.arange(120)])
    folds = list(GroupKFold(n_splits=4).split(D, Y, groups))
    ref = GridSearchCV(
        gp.models.make_logreg_classifier(1.0),
        {"logisticregression__C": list(Cs)},
        cv=folds,
        scoring="neg_log_loss",
    ).fit(D, Y)
    assert clf.C_ in Cs
    assert clf.C_ == ref.best_params_["logisticregression__C"]
    np.testing.assert_allclose(clf.estimator_.predict_proba(d), ref.predict_proba(d), atol=1e-10)


def test_k_the_c_search_keeps_each_prompt_in_one_fold():
    """Case k of the input-trust issue: with the rows' prompt groups, no group
    is on both sides of an inner fold (a row's swapped copy stays with it);
    without them, the folds are over rows as before."""
    X, y = _hidden_quality(120, seed=3)
    groups = np.arange(120) // 4  # 30 prompts of 4 rows each
    clf = PairDifferenceClassifier(Cs=(1e-2, 1.0), cv=5)
    d = X[:, :6] - X[:, 6:]
    D, Y = np.vstack([d, -d]), np.concatenate([y, gp.data.swap_labels(y)])
    doubled = np.concatenate([groups, groups])
    for train, test in clf._inner_folds(D, Y, 120, doubled):
        assert set(doubled[train]).isdisjoint(doubled[test])
    by_row = clf._inner_folds(D, Y, 120, None)
    assert any(not set(doubled[a]).isdisjoint(doubled[b]) for a, b in by_row)  # the leak
    row = np.concatenate([np.arange(120), np.arange(120)])
    assert all(set(row[a]).isdisjoint(row[b]) for a, b in by_row)  # a row with its swap
    # fit searches on those folds: its scores are those of the grouped folds
    grouped = clone(clf).fit(X, y, groups=groups)
    assert grouped.cv_log_loss_.shape == (2,)
    assert grouped.C_ == clf.Cs[int(np.argmin(grouped.cv_log_loss_))]
    score = gp.models.pairwise.neg_log_loss_of_every_class
    folds = clf._inner_folds(D, Y, 120, doubled)
    expected = [
        -cross_val_score(gp.models.make_logreg_classifier(C), D, Y, cv=folds, scoring=score).mean()
        for C in clf.Cs
    ]
    np.testing.assert_allclose(grouped.cv_log_loss_, expected, rtol=1e-10)
    assert not np.array_equal(grouped.cv_log_loss_, clone(clf).fit(X, y).cv_log_loss_)
    with pytest.raises(ValueError, match=r"groups has shape \(3,\); expected one group per row"):
        PairDifferenceClassifier().fit(X, y, groups=[1, 2, 3])


def test_k_recipe_pipelines_pass_the_prompt_groups(tiny_gemma, arena):
    """Case k: the "embedding" and "seed" recipes choose C on folds of the raw
    rows' prompt groups, with no extra argument to fit (alone or swap-wrapped)."""
    every = pd.Series(gp.evaluation.prompt_groups(arena))
    asked_again = np.flatnonzero(every.map(every.value_counts()) > 1)  # 4 prompts, 11 rows
    rows = arena.iloc[np.union1d(asked_again, np.arange(30))]
    y = gp.data.labels_from_winner(rows)
    groups = gp.evaluation.prompt_groups(rows)
    assert len(np.unique(groups)) < len(rows)  # some prompts were asked of several pairs
    small = {"max_length": 32, "dtype": "float32", "backend": "torch", "cache_dir": None}
    for recipe, classifier, scores in [
        ("embedding", PairDifferenceClassifier(Cs=(1e-4, 1e-2), cv=3),
         lambda fitted: fitted.cv_log_loss_),
        ("seed", gp.models.make_logreg_classifier(Cs=(1e-4, 1e-2)),
         lambda fitted: fitted.cv_results_["mean_test_score"]),
    ]:  # fmt: skip
        # pair texts under the token budget: no answer truncated away (TruncationWarning)
        formatter = make_recipe_formatter(recipe, tiny_gemma, max_length=32, budget=True)
        pipe = gp.make_preference_pipeline(
            tiny_gemma, recipe=recipe, classifier=classifier, formatter=formatter, **small
        )
        assert type(clone(pipe)).__name__ == "PromptGroupedPipeline"  # cross_val_score's clones
        pipe.fit(rows, y)
        E = pipe[:-1].transform(rows)
        grouped = clone(classifier).fit(E, y, groups=groups)
        by_row = clone(classifier).fit(E, y)
        np.testing.assert_array_equal(scores(pipe[-1]), scores(grouped))
        assert not np.array_equal(scores(grouped), scores(by_row))  # the test can tell
    # SwapABClassifier passes the rows and their swapped copies: one prompt, one group
    swap = gp.make_preference_pipeline(
        tiny_gemma, recipe="seed", classifier=classifier, swap_augment=True, **small
    ).fit(rows, y)
    both = pd.concat([rows, gp.models.swap_ab(rows)])
    E = swap.estimator_[:-1].transform(both)
    Y = np.concatenate([y, gp.data.swap_labels(y)])
    ref = clone(classifier).fit(E, Y, groups=np.concatenate([groups, groups]))
    np.testing.assert_array_equal(swap.estimator_[-1].cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])  # fmt: skip
