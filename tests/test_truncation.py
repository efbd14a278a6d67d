"""Truncation visible and avoided (issue 31, case j).

With two texts per row (the prompt with answer A, the prompt with answer B) and
the embedder's right truncation at ``max_length``, a long last prompt turn
fills every kept token: both texts shrink to the same prompt prefix and the
model sees one text twice. GemmaEmbedder says so (TruncationWarning, counting
the rows and naming them), whether the vectors come from the model or the
cache; the token budget avoids it; truncation_report measures it per row.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import gemma_pref as gp
from gemma_pref import ArenaTextFormatter
from gemma_pref.exceptions import TruncationWarning
from gemma_pref.text import truncation_report

MAX_LENGTH = 32


@pytest.fixture(scope="module")
def rows(arena):
    """Real rows: the four with the longest prompts, the four with the shortest."""
    by_length = arena["prompt"].str.len().sort_values(kind="stable").index
    picked = arena.loc[[*by_length[-4:], *by_length[:4]]]
    return picked.set_axis([f"row-{i}" for i in picked.index])


@pytest.fixture(scope="module")
def tokenizer(tiny_gemma):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gemma)


def _same_kept_tokens(tokenizer, pairs):
    """Per row: the two texts differ and their first MAX_LENGTH tokens are equal."""
    kept = [tokenizer(list(p), truncation=True, max_length=MAX_LENGTH)["input_ids"] for p in pairs]
    return np.array([a != b and x == y for (a, b), (x, y) in zip(pairs, kept)])


def test_j_identical_pair_texts_are_reported_and_the_budget_avoids_them(
    rows, tokenizer, make_embedder, tiny_gemma
):
    pairs = ArenaTextFormatter(layout="pair").set_output(transform="pandas").fit_transform(rows)
    assert list(pairs.index) == list(rows.index)
    expected = _same_kept_tokens(tokenizer, pairs.to_numpy())
    n = int(expected.sum())
    assert 0 < n < len(rows)  # the long prompts, not the short ones
    named = [label for label, hit in zip(rows.index, expected) if hit]

    embedder = make_embedder(max_length=MAX_LENGTH)
    message = re.escape(
        f"max_length={MAX_LENGTH} tokens of each text: in {n} of {len(rows)} rows of two "
        f"texts (rows {', '.join(map(repr, named))})"
    )
    with pytest.warns(TruncationWarning, match=message) as record:
        X = embedder.fit_transform(pairs)
    (w,) = record
    assert w.message.counts == {"identical": n, "answer_a_lost": n, "answer_b_lost": n}
    assert w.message.rows == named and w.message.n_rows == len(rows)
    assert "make_recipe_formatter(budget=True)" in str(w.message)
    assert "--budget" in str(w.message) and "raise max_length" in str(w.message)
    # the fault itself: the model saw one text twice, so A's vector is B's
    half = X.shape[1] // 2
    for r in np.flatnonzero(expected):
        np.testing.assert_array_equal(X[r, :half], X[r, half:])

    # the vectors now come from the cache; a fresh embedder says it all the same
    # (positions name the rows of an array)
    positions = ", ".join(str(i) for i in np.flatnonzero(expected))
    with pytest.warns(
        TruncationWarning, match=f"in {n} of .* texts \\(at positions {positions}\\)"
    ) as again:
        again_X = make_embedder(max_length=MAX_LENGTH).transform(pairs.to_numpy())
    np.testing.assert_array_equal(again_X, X)
    assert again[0].message.rows == [int(i) for i in np.flatnonzero(expected)]

    # the token budget gives the prompt and each answer their shares: nothing to report
    budget = ArenaTextFormatter(layout="pair", max_tokens=MAX_LENGTH, tokenizer=str(tiny_gemma))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        fair = make_embedder(max_length=MAX_LENGTH).fit_transform(budget.fit_transform(rows))
    differ = pairs["text_a"] != pairs["text_b"]  # two models may give the same answer
    assert (np.abs(fair[:, :half] - fair[:, half:]).max(axis=1) > 0)[differ].all()


def test_j_truncation_report_of_pair_texts(rows, tokenizer, tiny_gemma):
    plain = ArenaTextFormatter(layout="pair")
    report = truncation_report(rows, max_length=MAX_LENGTH, tokenizer=tiny_gemma, formatter=plain)
    assert list(report.index) == list(rows.index)
    texts = plain.fit_transform(rows)
    np.testing.assert_array_equal(
        report[["n_tokens_a", "n_tokens_b"]].to_numpy(),
        [[len(tokenizer(t)["input_ids"]) for t in pair] for pair in texts],
    )
    expected = _same_kept_tokens(tokenizer, texts)
    np.testing.assert_array_equal(report["identical_texts"], expected)
    long = report.loc[expected]
    # only a prefix of the prompt is left, the same in both texts, and no answer
    assert (long["prompt_kept_chars_a"] < long["prompt_chars"]).all()
    assert (long["prompt_kept_chars_a"] == long["prompt_kept_chars_b"]).all()
    assert (long[["response_a_kept_chars", "response_b_kept_chars"]] == 0).all(axis=None)
    for side in ("a", "b"):  # an empty answer has nothing to lose
        lost = long[f"response_{side}_chars"] > 0
        np.testing.assert_array_equal(long[f"response_{side}_lost"], lost)
    assert long["response_a_lost"].sum() + long["response_b_lost"].sum() >= len(long)
    short = report.loc[~expected]
    assert not short[["response_a_lost", "response_b_lost"]].any(axis=None)
    assert (short["prompt_kept_chars_a"] == short["prompt_chars"]).all()

    budget = ArenaTextFormatter(layout="pair", max_tokens=MAX_LENGTH, tokenizer=str(tiny_gemma))
    fair = truncation_report(rows, max_length=MAX_LENGTH, tokenizer=tiny_gemma, formatter=budget)
    assert (fair[["n_tokens_a", "n_tokens_b"]] <= MAX_LENGTH).all(axis=None)
    assert not fair[["response_a_lost", "response_b_lost", "identical_texts"]].any(axis=None)
    for side in ("a", "b"):
        given = fair[f"response_{side}_chars"] > 0
        assert (fair.loc[given, f"response_{side}_kept_chars"] > 0).all()

    # the joint layout keeps its columns and gains the lost answers
    joint = truncation_report(rows, max_length=MAX_LENGTH, tokenizer=tiny_gemma)
    assert list(joint.columns) == [
        "n_tokens",
        *(f"{c}_{k}" for c in gp.text.formatting.ARENA_COLUMNS for k in ("chars", "kept_chars")),
        "response_a_lost",
        "response_b_lost",
    ]
    lost_b = (joint["response_b_chars"] > 0) & (joint["response_b_kept_chars"] == 0)
    np.testing.assert_array_equal(joint["response_b_lost"], lost_b)
    assert lost_b.sum() >= len(rows) - 1  # 32 tokens never reach B (one row's B is empty)


def test_j_the_default_recipe_budgets_and_the_blend_names_rows_by_their_index(
    arena, tokenizer, tiny_gemma
):
    from gemma_pref.pipeline import make_recipe_formatter

    frame = arena.iloc[:36].set_axis([f"id-{i}" for i in range(36)])
    y = gp.data.labels_from_winner(frame)
    settings = dict(max_length=MAX_LENGTH, dtype="float32", backend="torch", cache_dir=None)
    plain = make_recipe_formatter("pairwise", tiny_gemma, budget=False)
    expected = _same_kept_tokens(tokenizer, plain.fit_transform(frame))
    named = [label for label, hit in zip(frame.index, expected) if hit][:5]
    assert 5 < expected.sum() < len(frame)

    small = dict(Cs=(1e-3, 1e-1), weights=(0.5, 1.0))  # a short search inside fit
    blend = gp.make_preference_pipeline(tiny_gemma, formatter=plain, **settings)
    blend.set_params(**small)
    with pytest.warns(TruncationWarning, match=f"in {expected.sum()} of 36 rows") as record:
        blend.fit(frame, y)
    (w,) = record
    assert w.message.rows == named  # the frame's index, through the blend's formatter
    assert w.filename == __file__  # the line that called fit, not a wrapper inside

    # the pairwise recipe's own formatter shares the tokens: nothing to report
    # (filterwarnings=error), and its budget follows the embedder's max_length
    default = gp.make_preference_pipeline(tiny_gemma, **settings).set_params(**small)
    assert default.formatter.max_tokens == MAX_LENGTH
    default.fit(frame, y)
