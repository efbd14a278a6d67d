"""Nothing English-only where it must not be: the WSDM Cup's rows are multilingual.

The formatter, the token budget, the structure features and the prompt groups
on Chinese, Japanese, Russian, Arabic and emoji text, given as plain strings
(as the WSDM Cup Parquet holds them) and read through read_preferences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gemma_pref as gp
from gemma_pref import ArenaStructureFeatures, ArenaTextFormatter, read_preferences
from gemma_pref.data import parse_turns
from gemma_pref.evaluation.model_selection import prompt_groups
from gemma_pref.text import truncation_report

ROWS = [
    (
        "Chinese",
        "请用三句话解释光合作用。",
        "光合作用是植物利用阳光把二氧化碳和水转化为葡萄糖和氧气的过程。" * 6,
        "植物通过叶绿体吸收光能。" * 9,
    ),
    (
        "Japanese",
        "東京でおすすめの観光地を教えてください。",
        "浅草寺、東京スカイツリー、明治神宮がおすすめです。" * 7,
        "- 上野公園\n- 渋谷スクランブル交差点\n- 築地場外市場\n" * 5,
    ),
    (
        "Russian",
        "Привет! Как дела?",
        "Привет! У меня всё хорошо, спасибо. А как у вас? " * 8,
        "**Отлично**, спасибо за вопрос. Чем могу помочь? " * 8,
    ),
    (
        "Arabic",
        "ما هي عاصمة المغرب؟",
        "عاصمة المغرب هي الرباط، وهي مدينة تقع على ساحل المحيط الأطلسي. " * 6,
        "الرباط. " * 20,
    ),
    (
        "emoji",
        "Describe a sunny day with emoji 🌞",
        "🌞☀️🌈 A bright day! 😎🏖️🍦 " * 10,
        "👍" * 60 + " 👨‍👩‍👧‍👦🏳️‍🌈",
    ),
]


@pytest.fixture(scope="module")
def wsdm():
    return pd.DataFrame(
        {
            "id": [f"w{i}" for i in range(len(ROWS))],
            "prompt": [r[1] for r in ROWS],
            "response_a": [r[2] for r in ROWS],
            "response_b": [r[3] for r in ROWS],
            "winner": ["model_a", "model_b", "model_a", "model_b", "model_a"],
            "language": [r[0] for r in ROWS],
        }
    )


def test_reader_keeps_scripts_and_the_language_column(wsdm, tmp_path):
    path = tmp_path / "train.parquet"
    wsdm.to_parquet(path, index=False)
    frame, y = read_preferences(path)
    assert frame["language"].tolist() == [r[0] for r in ROWS]
    assert y.tolist() == [0, 1, 0, 1, 0]
    for column, k in (("prompt", 1), ("response_a", 2), ("response_b", 3)):
        assert [parse_turns(c) for c in frame[column]] == [[r[k]] for r in ROWS]
    assert "光合作用" in frame.loc[0, "prompt"]  # stored as UTF-8, not \\u escapes


@pytest.mark.parametrize("layout", ["joint", "pair"])
@pytest.mark.parametrize("budget", [48, 96])
def test_token_budget_holds_for_every_script(wsdm, tiny_gemma, layout, budget):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma)
    fmt = ArenaTextFormatter(layout=layout, max_tokens=budget, tokenizer=str(tiny_gemma))
    plain = fmt.fit_transform(wsdm)
    read, _ = read_preferences(wsdm)
    np.testing.assert_array_equal(fmt.transform(read), plain)  # plain strings as JSON lists
    for i, texts in enumerate(np.atleast_2d(plain.reshape(len(wsdm), -1))):
        for j, text in enumerate(texts):
            text.encode("utf-8")  # strict: no broken character
            n = len(tokenizer(text, add_special_tokens=True)["input_ids"])
            assert n <= budget, (ROWS[i][0], n)
            # both answers survive the budget (a byte-level tokenizer spends
            # several tokens on a CJK character), each cut to a prefix of itself
            answers = [ROWS[i][2], ROWS[i][3]] if layout == "joint" else [ROWS[i][2 + j]]
            for answer in answers:
                assert answer[:2] in text, (ROWS[i][0], answer[:2])


def test_truncation_report_counts_characters_of_every_script(wsdm, tiny_gemma):
    fmt = ArenaTextFormatter(
        template="{prompt}|{response_a}|{response_b}", max_tokens=64, tokenizer=str(tiny_gemma)
    )
    report = truncation_report(wsdm, max_length=64, tokenizer=str(tiny_gemma), formatter=fmt)
    assert report["response_a_chars"].tolist() == [len(r[2]) for r in ROWS]
    assert (report["response_a_kept_chars"] > 0).all()
    assert (report["response_b_kept_chars"] > 0).all()
    # without a tokenizer (4 characters a token) the seed template keeps more
    # characters than fit: scripts of several tokens per character overrun
    assert (report["n_tokens"] > 0).all()


def test_structure_features_and_groups_on_every_script(wsdm):
    feats = ArenaStructureFeatures().set_output(transform="pandas").fit_transform(wsdm)
    assert np.isfinite(feats.to_numpy()).all()
    counts = np.expm1(feats)  # the features are log(1 + count)
    np.testing.assert_allclose(counts["response_a_chars"], [len(r[2]) for r in ROWS])
    assert counts.loc[1, "response_b_bullet_items"] == pytest.approx(15.0)  # Japanese list items
    assert counts.loc[2, "response_b_bold"] == pytest.approx(8.0)  # Cyrillic bold spans
    assert (feats["response_a_empty"] == 0).all()
    # prompts compared case-folded in every script; language stays for grouping by it
    more = pd.concat(
        [wsdm, wsdm.assign(prompt=wsdm["prompt"].str.upper(), id=wsdm["id"] + "x")],
        ignore_index=True,
    )
    groups = prompt_groups(more)
    np.testing.assert_array_equal(groups[:5], groups[5:])
    assert len(set(groups)) == 5
    y = gp.data.labels_from_winner(more)
    by_language = pd.factorize(more["language"])[0]
    cv = gp.PromptGroupKFold(n_splits=2)
    for train, test in cv.split(more, y, groups=by_language):
        assert set(more["language"][train]).isdisjoint(more["language"][test])
