from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gemma_pref.data import labels_from_winner
from gemma_pref.evaluation.model_selection import PromptGroupKFold, normalize_prompt, prompt_groups
from gemma_pref.exceptions import ArenaFormatError, MissingCellsWarning
from gemma_pref.text.features import ArenaStructureFeatures


def _keys(df):
    return [normalize_prompt([t or "" for t in json.loads(c)]) for c in df["prompt"]]


def test_prompt_groups_of_the_sample(arena):
    groups = prompt_groups(arena)
    assert groups.dtype == np.int64 and groups.shape == (715,)
    assert groups[0] == 0 and set(groups) == set(range(groups.max() + 1))
    keys = _keys(arena)
    assert groups.max() + 1 == len(set(keys)) == 708  # 7 rows repeat a prompt
    by_key = pd.Series(groups).groupby(pd.Series(keys)).nunique()
    assert (by_key == 1).all()
    test_rows = [i for i, k in enumerate(keys) if k == "test"]
    assert len(test_rows) == 4 and len(set(groups[test_rows])) == 1


def test_prompts_compare_across_case_whitespace_and_turns():
    df = pd.DataFrame(
        {
            "prompt": [
                '["Hello  World"]',
                '["hello world\\n"]',
                '["hello", "world"]',
                '["hello world", "again"]',
                np.nan,
                "[]",
            ]
        }
    )
    with pytest.warns(MissingCellsWarning, match=r"prompt: 1; row 4\)"):
        groups = prompt_groups(df)
    np.testing.assert_array_equal(groups, [0, 0, 0, 1, 2, 2])


def test_prompt_groups_errors_name_column_and_row():
    with pytest.raises(ArenaFormatError, match="prompt at row 'r2'"):
        prompt_groups(pd.DataFrame({"prompt": ['["a"]', '["nope']}, index=["r1", "r2"]))
    with pytest.raises(ValueError, match="Missing column.*'prompt'"):
        prompt_groups(pd.DataFrame({"response_a": ['["a"]']}))


def test_folds_never_share_a_prompt_and_keep_class_balance(arena):
    y = labels_from_winner(arena)
    groups = prompt_groups(arena)
    seen = np.zeros(len(arena), dtype=int)
    overall = np.bincount(y, minlength=3) / len(y)
    for train, test in PromptGroupKFold(5).split(arena, y):
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == len(arena)
        seen[test] += 1
        share = np.bincount(y[test], minlength=3) / len(test)
        np.testing.assert_allclose(share, overall, atol=0.03)
    assert (seen == 1).all()  # every row is tested exactly once


def test_ungrouped_folds_leak_prompts_on_the_sample(arena):
    # why this splitter exists: plain stratified folds split repeated prompts
    y = labels_from_winner(arena)
    groups = prompt_groups(arena)
    leaks = sum(
        not set(groups[train]).isdisjoint(groups[test])
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(arena, y)
    )
    assert leaks >= 1


def _features_lr():
    return make_pipeline(ArenaStructureFeatures(), StandardScaler(), LogisticRegression(C=0.01))


def test_usable_as_cv_directly_and_same_as_sklearn_with_groups(arena):
    y = labels_from_winner(arena)
    ours = cross_val_score(_features_lr(), arena, y, cv=PromptGroupKFold(5), scoring="neg_log_loss")
    theirs = cross_val_score(
        _features_lr(),
        arena,
        y,
        cv=StratifiedGroupKFold(5),
        groups=prompt_groups(arena),
        scoring="neg_log_loss",
    )
    np.testing.assert_array_equal(ours, theirs)
    assert np.isfinite(ours).all()
    # explicit groups win over the prompt groups
    rows = np.arange(len(arena))
    given = [test.tolist() for _, test in PromptGroupKFold(5).split(arena, y, groups=rows)]
    plain = [test.tolist() for _, test in StratifiedGroupKFold(5).split(arena, y, rows)]
    assert given == plain


def test_shuffle_and_grid_search(arena):
    y = labels_from_winner(arena)
    a = [t.tolist() for _, t in PromptGroupKFold(3, shuffle=True, random_state=1).split(arena, y)]
    b = [t.tolist() for _, t in PromptGroupKFold(3, shuffle=True, random_state=1).split(arena, y)]
    c = [t.tolist() for _, t in PromptGroupKFold(3).split(arena, y)]
    assert a == b and a != c
    search = GridSearchCV(
        _features_lr(),
        {"logisticregression__C": [0.01, 0.1]},
        cv=PromptGroupKFold(3),
        scoring="neg_log_loss",
    ).fit(arena, y)
    assert search.best_params_["logisticregression__C"] in (0.01, 0.1)
    assert PromptGroupKFold(4).get_n_splits() == 4
    assert " ".join(repr(PromptGroupKFold(4)).split()) == (
        "PromptGroupKFold(cell_format='auto', n_splits=4, random_state=None, shuffle=False)"
    )


def test_split_needs_labels(arena):
    with pytest.raises(ValueError, match="PromptGroupKFold stratifies on the labels"):
        next(PromptGroupKFold(5).split(arena))
