from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from gemma_pref import ArenaTextFormatter, GemmaEmbedder
from gemma_pref.data import labels_from_winner
from gemma_pref.exceptions import ArenaFormatError, MissingCellsWarning
from gemma_pref.models.augmentation import SwapABClassifier, swap_ab
from gemma_pref.text.features import PROMPT_FEATURES, RESPONSE_FEATURES, ArenaStructureFeatures

MARKDOWN = """# Title
Some **bold** text and `code` here.

- one
- two
* three

1. first
2) second

```python
print("hi")
```

| a | b |
|---|---|
| 1 | 2 |

See https://example.com and [x](http://x.org).
I'm sorry, but as an AI I cannot do that."""

EXPECTED_MARKDOWN = {
    "chars": len(MARKDOWN),
    "words": len(MARKDOWN.split()),
    "lines": 15,
    "bullet_items": 3,
    "numbered_items": 2,
    "code_blocks": 1,
    "inline_code": 1,
    "headers": 1,
    "bold": 1,
    "links": 2,
    "table_rows": 3,
    "refusals": 3,
    "empty": 0,
}


def _frame(prompt, a, b):
    return pd.DataFrame(
        {
            "prompt": [json.dumps(prompt)],
            "response_a": [json.dumps(a)],
            "response_b": [json.dumps(b)],
        }
    )


def _row(df, **params):
    out = ArenaStructureFeatures(**params).set_output(transform="pandas").fit_transform(df)
    return out.iloc[0]


def test_counts_of_a_markdown_answer_and_a_null_answer():
    row = _row(_frame(["Explain, please"], [MARKDOWN], [None]))
    assert set(EXPECTED_MARKDOWN) == set(RESPONSE_FEATURES)
    for name, value in EXPECTED_MARKDOWN.items():
        b = 1.0 if name == "empty" else 0.0
        assert row[f"response_a_{name}"] == pytest.approx(np.log1p(value)), name
        assert row[f"response_b_{name}"] == pytest.approx(np.log1p(b)), name
        assert row[f"diff_{name}"] == pytest.approx(np.log1p(value) - np.log1p(b)), name
        assert row[f"absdiff_{name}"] == pytest.approx(abs(np.log1p(value) - np.log1p(b)))
        assert row[f"gap_{name}"] == pytest.approx(np.sign(value - b) * np.log1p(abs(value - b)))
    assert row["prompt_turns"] == 1 and row["identical"] == 0
    assert row["prompt_chars"] == pytest.approx(np.log1p(15))
    assert row["prompt_words"] == pytest.approx(np.log1p(2))
    same = _row(_frame(["q"], ["same text"], ["same text"]))
    assert same["identical"] == 1 and same["absdiff_chars"] == 0 == same["diff_words"]


def test_turns_all_sums_and_last_keeps_the_last_turn():
    df = _frame(["p1", "p2 words"], ["- a\n- b", "x"], ["## H", None])
    every, last = (np.expm1(_row(df, turns=t)) for t in ("all", "last"))
    assert every["prompt_turns"] == last["prompt_turns"] == np.expm1(2)  # not log-scaled
    assert every["response_a_bullet_items"] == pytest.approx(2)
    assert last["response_a_bullet_items"] == 0
    assert every["response_a_chars"] == pytest.approx(8)
    assert last["response_a_chars"] == pytest.approx(1)
    assert every["response_b_headers"] == pytest.approx(1) and last["response_b_headers"] == 0
    assert every["response_b_empty"] == 0 and last["response_b_empty"] == pytest.approx(1)
    assert every["prompt_chars"] == pytest.approx(10)
    assert last["prompt_chars"] == pytest.approx(8)


def test_missing_cells_and_empty_lists_are_empty_answers():
    df = pd.DataFrame(
        {
            "prompt": ['["q"]', "[]"],
            "response_a": [np.nan, "[]"],
            "response_b": ['["b"]', None],
        }
    )
    feats = ArenaStructureFeatures().set_output(transform="pandas")
    with pytest.warns(MissingCellsWarning, match=r"response_a: 1, response_b: 1; row 0, row 1"):
        out = feats.fit_transform(df)
    log2 = float(np.log1p(1))
    assert out["response_a_empty"].tolist() == [log2, log2]
    assert out["response_a_chars"].tolist() == [0.0, 0.0]
    assert out["response_b_empty"].tolist() == [0.0, log2]
    assert out["prompt_turns"].tolist() == [1.0, 0.0]
    # both answers missing: identical (no turns on either side)
    assert out["identical"].tolist() == [0.0, 1.0]
    assert np.isfinite(out.to_numpy()).all()


def test_sample_matrix_names_and_set_output(arena):
    feats = ArenaStructureFeatures()
    X = feats.fit_transform(arena)
    names = feats.get_feature_names_out()
    assert X.shape == (715, len(names)) == (715, 4 + 5 * len(RESPONSE_FEATURES))
    assert X.dtype == np.float64 and np.isfinite(X).all()
    assert len(set(names)) == len(names)
    absdiff = X[:, [n.startswith("absdiff_") for n in names]]
    diff = X[:, [n.startswith("diff_") for n in names]]
    assert absdiff.shape[1] == diff.shape[1] == len(RESPONSE_FEATURES)
    np.testing.assert_array_equal(absdiff, np.abs(diff))
    # log scale: the longest answer of the sample (tens of thousands of chars) stays O(10)
    assert 8 < X[:, list(names).index("response_a_chars")].max() < 12
    frame = ArenaStructureFeatures().set_output(transform="pandas").fit_transform(arena)
    assert list(frame.columns) == list(names) and frame.index.equals(arena.index)
    np.testing.assert_array_equal(frame.to_numpy(), X)
    # the sample's answers that are a single null turn
    assert (frame["response_a_empty"] > 0).sum() == 1 and (frame["response_b_empty"] > 0).sum() == 2


def test_swapping_the_answers_swaps_the_features(arena):
    feats = ArenaStructureFeatures().set_output(transform="pandas")
    x, s = feats.fit_transform(arena), feats.fit_transform(swap_ab(arena))
    for f in RESPONSE_FEATURES:
        np.testing.assert_array_equal(s[f"response_a_{f}"], x[f"response_b_{f}"])
        np.testing.assert_array_equal(s[f"response_b_{f}"], x[f"response_a_{f}"])
        np.testing.assert_array_equal(s[f"diff_{f}"], -x[f"diff_{f}"])
        np.testing.assert_array_equal(s[f"absdiff_{f}"], x[f"absdiff_{f}"])
        np.testing.assert_array_equal(s[f"gap_{f}"], -x[f"gap_{f}"])
    for same in PROMPT_FEATURES:
        np.testing.assert_array_equal(s[same], x[same])
    # swap_map says the same, for every column at once
    index, sign = ArenaStructureFeatures().swap_map()
    np.testing.assert_array_equal(s.to_numpy(), x.to_numpy()[:, index] * sign)
    assert sorted(index) == list(range(x.shape[1])) and set(sign) == {-1.0, 1.0}


def test_words_count_cjk_characters_and_any_script():
    texts = {
        "我喜欢吃苹果。": 6,  # six ideographs; the full stop is not a word
        "東京は日本の首都です": 10,
        "Москва — столица России": 4,
        "القاهرة هي عاصمة مصر": 4,
        "I ❤️ 🍕 so much": 5,
        "mixed 中文 text": 4,
    }
    for text, words in texts.items():
        row = _row(_frame([text], [text], ["x"]))
        assert row["response_a_words"] == pytest.approx(np.log1p(words)), text
        assert row["response_a_chars"] == pytest.approx(np.log1p(len(text))), text
        assert np.isfinite(row.to_numpy()).all()


def test_the_longer_answer_tends_to_win_on_the_sample(arena):
    # the signal these features exist for, on real preferences
    y = labels_from_winner(arena)
    ratio = (
        ArenaStructureFeatures().set_output(transform="pandas").fit_transform(arena)["diff_chars"]
    )
    a_wins, b_wins = ratio[y == 0], ratio[y == 1]
    assert a_wins.mean() > 0 > b_wins.mean()
    assert mannwhitneyu(a_wins, b_wins, alternative="greater").pvalue < 1e-3


def test_errors_name_the_column_and_row():
    df = pd.DataFrame(
        {
            "prompt": ['["p"]', '["p"]'],
            "response_a": ['["a"]', '["a"]'],
            "response_b": ['["b"]', '["oops'],
        },
        index=["r0", "r9"],
    )
    with pytest.raises(ArenaFormatError, match="response_b at row 'r9'"):
        ArenaStructureFeatures().fit_transform(df)
    with pytest.raises(ValueError, match="Missing column.*ArenaStructureFeatures needs"):
        ArenaStructureFeatures().fit(df.drop(columns="prompt"))
    with pytest.raises(ValueError, match="string object received"):
        ArenaStructureFeatures().fit("prompt")
    with pytest.raises(InvalidParameterError, match="'turns' parameter of ArenaStructureFeatures"):
        ArenaStructureFeatures(turns="first").fit(df)


def test_stateless_and_picklable(arena):
    feats = ArenaStructureFeatures(turns="last")
    out = feats.transform(arena.head(5))  # no fit needed
    again = pickle.loads(pickle.dumps(feats)).transform(arena.head(5))
    np.testing.assert_array_equal(out, again)


def test_feature_union_with_gemma_embeddings(tiny_gemma, arena):
    df = arena.head(24)
    embed = Pipeline(
        [
            ("formatter", ArenaTextFormatter()),
            (
                "embedder",
                GemmaEmbedder(tiny_gemma, max_length=64, dtype="float32"),
            ),
        ]
    )
    union = FeatureUnion([("emb", embed), ("feat", ArenaStructureFeatures())])
    X = union.fit_transform(df)
    n_feat = len(ArenaStructureFeatures().get_feature_names_out())
    assert X.shape == (24, 64 + n_feat) and np.isfinite(X).all()
    np.testing.assert_allclose(X[:, :64], embed.fit_transform(df), rtol=1e-6)
    np.testing.assert_array_equal(X[:, 64:], ArenaStructureFeatures().fit_transform(df))

    frame = union.set_output(transform="pandas").fit_transform(df)
    assert frame.columns[0] == "emb__gemmaembedder0"
    assert frame.columns[-1] == "feat__gap_empty"
    assert "feat__diff_chars" in frame.columns and frame.index.equals(df.index)

    # and a classifier on top, swap-augmented, end to end
    y = labels_from_winner(df)
    clf = SwapABClassifier(
        make_pipeline(
            FeatureUnion([("emb", embed), ("feat", ArenaStructureFeatures())]),
            StandardScaler(),
            LogisticRegression(C=0.01),
        )
    ).fit(df, y)
    proba = clf.predict_proba(df)
    assert proba.shape == (24, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_column_transformer_selects_the_arena_columns(arena):
    ct = ColumnTransformer(
        [("feat", ArenaStructureFeatures(), ["prompt", "response_a", "response_b"])]
    )
    out = ct.fit_transform(arena.head(10))
    np.testing.assert_array_equal(out, ArenaStructureFeatures().fit_transform(arena.head(10)))
    assert ct.get_feature_names_out()[0] == "feat__prompt_turns"
