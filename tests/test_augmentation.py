from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from gemma_pref import ArenaTextFormatter, make_preference_pipeline
from gemma_pref.data import labels_from_winner
from gemma_pref.evaluation.model_selection import PromptGroupKFold
from gemma_pref.models.augmentation import SwapABClassifier, swap_ab, swap_labels
from gemma_pref.pipeline import make_recipe_formatter
from gemma_pref.text.features import ArenaStructureFeatures

SWAP = [1, 0, 2]


def _features_lr():
    return make_pipeline(ArenaStructureFeatures(), StandardScaler(), LogisticRegression(C=0.01))


# ------------------------------------------------------------------ swap_ab
def test_swap_ab_exchanges_the_pairs_and_keeps_the_rest(arena):
    before = arena.copy()
    swapped = swap_ab(arena)
    pd.testing.assert_frame_equal(arena, before)  # input untouched
    assert list(swapped.columns) == list(arena.columns)
    assert swapped.index.equals(arena.index)
    for left, right in [
        ("response_a", "response_b"),
        ("model_a", "model_b"),
        ("winner_model_a", "winner_model_b"),
    ]:
        assert swapped[left].tolist() == arena[right].tolist()
        assert swapped[right].tolist() == arena[left].tolist()
    for same in ("id", "prompt", "winner_tie"):
        assert swapped[same].tolist() == arena[same].tolist()
    pd.testing.assert_frame_equal(swap_ab(swapped), arena)
    assert swapped is not arena


def test_swapped_winner_columns_agree_with_swap_labels(arena):
    y = labels_from_winner(arena)
    np.testing.assert_array_equal(labels_from_winner(swap_ab(arena)), swap_labels(y))
    assert (swap_labels(y) == 1).sum() == (y == 0).sum()
    assert (swap_labels(y) == 2).sum() == (y == 2).sum()


def test_swap_ab_without_optional_pairs_and_from_a_mapping():
    out = swap_ab({"response_a": ['["a"]'], "response_b": ['["b"]']})
    assert out.iloc[0].tolist() == ['["b"]', '["a"]']


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        ({"response_a": ['["a"]']}, "Missing column.*'response_b': swap_ab needs"),
        (
            {"response_a": ["[]"], "response_b": ["[]"], "model_a": ["m"]},
            "column 'model_a' has no partner 'model_b'",
        ),
    ],
)
def test_swap_ab_errors_name_the_columns(frame, match):
    with pytest.raises(ValueError, match=match):
        swap_ab(pd.DataFrame(frame))


def test_swap_ab_rejects_a_bare_string():
    with pytest.raises(ValueError, match="string object received"):
        swap_ab("response_a")


def test_swap_labels_rejects_unknown_labels():
    np.testing.assert_array_equal(swap_labels(np.array([2, 1, 0])), [2, 0, 1])
    with pytest.raises(ValueError, match=r"y at position 2: expected 0 .* got 3"):
        swap_labels([0, 1, 3])
    with pytest.raises(ValueError, match="got 'model_a'"):
        swap_labels(["model_a"])


def test_formatting_swapped_rows_equals_the_formatter_swap(arena):
    # ArenaTextFormatter(swap=True) is the same view as swapping the raw rows,
    # and the two compose: swapping twice is the original text.
    df = arena.head(60)
    plain = ArenaTextFormatter().fit_transform(df)
    assert list(ArenaTextFormatter().fit_transform(swap_ab(df))) == list(
        ArenaTextFormatter(swap=True).fit_transform(df)
    )
    assert list(ArenaTextFormatter(swap=True).fit_transform(swap_ab(df))) == list(plain)


# ------------------------------------------------------------ the classifier
def test_tta_makes_predictions_exactly_swap_symmetric(arena):
    train, test = arena.iloc[:500], arena.iloc[500:]
    y = labels_from_winner(train)
    base = _features_lr().fit(train, y)
    # the plain model is not symmetric: it has learnt a position bias
    gap = np.abs(base.predict_proba(swap_ab(test))[:, SWAP] - base.predict_proba(test))
    assert gap.max() > 1e-3

    clf = SwapABClassifier(_features_lr(), augment=False).fit(train, y)
    proba = clf.predict_proba(test)
    np.testing.assert_array_equal(clf.predict_proba(swap_ab(test)), proba[:, SWAP])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # and it is the average of the two orders, mapped back
    inner = clf.estimator_
    expected = 0.5 * (inner.predict_proba(test) + inner.predict_proba(swap_ab(test))[:, SWAP])
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(clf.predict(test), np.argmax(proba, axis=1))


def test_augment_fits_on_the_rows_and_their_swapped_copies(arena):
    df = arena.iloc[:400]
    y = labels_from_winner(df)
    clf = SwapABClassifier(_features_lr(), augment=True, tta=False).fit(df, y)
    manual = _features_lr().fit(pd.concat([df, swap_ab(df)]), np.concatenate([y, swap_labels(y)]))
    test = arena.iloc[400:]
    np.testing.assert_allclose(clf.predict_proba(test), manual.predict_proba(test))
    np.testing.assert_array_equal(clf.predict(test), manual.predict(test))
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    # trained on both orders, the classes 0 and 1 are balanced in its prior
    lr = clf.estimator_[-1]
    assert abs(lr.intercept_[0] - lr.intercept_[1]) < 1e-6
    assert clf.estimator is not clf.estimator_ and not hasattr(clf.estimator[-1], "coef_")


def test_cross_val_score_with_prompt_groups_and_joblib(arena, tmp_path):
    y = labels_from_winner(arena)
    clf = SwapABClassifier(_features_lr())
    scores = cross_val_score(clf, arena, y, cv=PromptGroupKFold(5), scoring="neg_log_loss")
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert (-scores < 1.12).all()

    fitted = clone(clf).fit(arena.iloc[:600], y[:600])
    path = tmp_path / "swap.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(arena.iloc[600:]), fitted.predict_proba(arena.iloc[600:])
    )
    assert clone(clf).get_params()["estimator__logisticregression__C"] == 0.01


def test_tta_needs_both_a_and_b_labels_unless_augmented(arena):
    df = arena.head(200)
    y = labels_from_winner(df)
    keep = y != 1
    with pytest.raises(ValueError, match=r"needs the labels 0 .* and 1 .*\[0, 2\]"):
        SwapABClassifier(_features_lr(), augment=False).fit(df[keep], y[keep])
    clf = SwapABClassifier(_features_lr(), augment=True).fit(df[keep], y[keep])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    plain = SwapABClassifier(_features_lr(), augment=False, tta=False)
    np.testing.assert_array_equal(plain.fit(df[keep], y[keep]).classes_, [0, 2])


def test_fit_checks_labels_rows_and_parameters(arena):
    df = arena.head(20)
    y = labels_from_winner(df)
    with pytest.raises(ValueError, match="y at position 0"):
        SwapABClassifier(_features_lr()).fit(df, y + 3)
    with pytest.raises(ValueError, match="X has 20 rows but y has 19 labels"):
        SwapABClassifier(_features_lr()).fit(df, y[:-1])
    with pytest.raises(InvalidParameterError, match="'estimator' parameter of SwapABClassifier"):
        SwapABClassifier("LogisticRegression").fit(df, y)
    with pytest.raises(InvalidParameterError, match="'augment' parameter"):
        SwapABClassifier(_features_lr(), augment="yes").fit(df, y)
    with pytest.raises(ValueError, match="Missing column.*'response_b'"):
        SwapABClassifier(_features_lr()).fit(df.drop(columns="response_b"), y)


def test_unfitted_predict_raises(arena):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SwapABClassifier(_features_lr()).predict_proba(arena.head(3))


def test_around_the_gemma_pipeline_swapped_texts_are_embedded_once(tiny_gemma, arena, forward_rows):
    rows = forward_rows
    df = arena.head(40)
    y = labels_from_winner(df)
    pipe = make_preference_pipeline(
        tiny_gemma,
        recipe="embedding",
        max_length=64,
        dtype="float32",
        classifier=make_pipeline(StandardScaler(), LogisticRegression(C=0.01)),
        # the token budget: no answer is truncated away (TruncationWarning)
        formatter=make_recipe_formatter("embedding", tiny_gemma, max_length=64, budget=True),
    )
    clf = SwapABClassifier(pipe).fit(df, y)
    # one text per answer: a swapped copy has the same two texts, embedded once
    n_texts = len(set(pipe["formatter"].fit_transform(df).ravel()))
    assert sum(rows) == n_texts > 40
    proba = clf.predict_proba(df)
    assert sum(rows) == n_texts  # test-time swaps hit the cache
    np.testing.assert_array_equal(clf.predict_proba(swap_ab(df)), proba[:, SWAP])
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    assert len(buf.getvalue()) < 200_000  # no weights in the pickle
