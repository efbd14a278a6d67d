"""read_preferences on every public format, built from the bundled sample's real rows.

Each format is made from the sample inside the tests: WSDM Cup plain strings
from its single-turn rows without a tie, LMArena message lists from all rows,
chosen/rejected pairs from the rows without a tie. The reader must give back
the sample's arena rows, and a fitted pipeline the same probabilities on both.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gemma_pref as gp
from gemma_pref import ArenaStructureFeatures, read_preferences
from gemma_pref.data import ARENA_COLUMNS, parse_turns
from gemma_pref.exceptions import ArenaFormatError

WINNERS = np.array(["model_a", "model_b", "tie"])


# ------------------------------------------------------------------ builders
def _turns(frame, column):
    return [parse_turns(c) for c in frame[column].tolist()]


def _single_turn(arena):
    one = np.ones(len(arena), dtype=bool)
    for column in ARENA_COLUMNS:
        one &= np.array([len(t) == 1 for t in _turns(arena, column)])
    return one


def wsdm_rows(arena):
    """The WSDM Cup layout: plain strings, winner model_a/model_b, language."""
    rows = arena[_single_turn(arena) & (arena["winner_tie"] == 0).to_numpy()]
    y = gp.data.labels_from_winner(rows)
    frame = pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            **{c: [t[0] for t in _turns(rows, c)] for c in ARENA_COLUMNS},
            "winner": WINNERS[y],
            "model_a": rows["model_a"].to_numpy(),
            "model_b": rows["model_b"].to_numpy(),
            "language": "English",
        }
    )
    return rows.reset_index(drop=True), frame


def _messages(prompt, answers):
    out = []
    for question, answer in zip(prompt, answers):
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return out


def lmarena_rows(arena):
    """The LMArena layout: conversation_a/b message lists of every row, ties
    included; the row ids in the releases' own column, ``question_id``."""
    y = gp.data.labels_from_winner(arena)
    prompts = _turns(arena, "prompt")
    return pd.DataFrame(
        {
            "question_id": arena["id"].to_numpy(),
            "model_a": arena["model_a"].to_numpy(),
            "model_b": arena["model_b"].to_numpy(),
            "conversation_a": [
                _messages(p, a) for p, a in zip(prompts, _turns(arena, "response_a"))
            ],
            "conversation_b": [
                _messages(p, b) for p, b in zip(prompts, _turns(arena, "response_b"))
            ],
            "winner": WINNERS[y],
            "turn": [len(p) for p in prompts],
        }
    )


def chosen_rejected_rows(arena, conversational):
    """Reward-model pairs from the rows without a tie: the winner is 'chosen'."""
    decided = arena[(arena["winner_tie"] == 0).to_numpy()]
    if not conversational:
        decided = decided[_single_turn(decided)]
    decided = decided.reset_index(drop=True)
    y = gp.data.labels_from_winner(decided)
    prompts = _turns(decided, "prompt")
    a, b = _turns(decided, "response_a"), _turns(decided, "response_b")
    chosen = [x if label == 0 else z for x, z, label in zip(a, b, y)]
    rejected = [z if label == 0 else x for x, z, label in zip(a, b, y)]
    if conversational:
        frame = pd.DataFrame(
            {
                "chosen": [_messages(p, c) for p, c in zip(prompts, chosen)],
                "rejected": [_messages(p, r) for p, r in zip(prompts, rejected)],
            }
        )
    else:
        frame = pd.DataFrame(
            {
                "prompt": [p[0] for p in prompts],
                "chosen": [c[0] for c in chosen],
                "rejected": [r[0] for r in rejected],
            }
        )
    frame["source"] = "arena"
    return decided, frame


def assert_same_rows(got, expected):
    for column in ARENA_COLUMNS:
        assert _turns(got, column) == _turns(expected, column), column


@pytest.fixture(scope="module")
def structure_model(arena):
    """Structure features + logistic regression, fitted once on the sample."""
    model = make_pipeline(
        ArenaStructureFeatures(), StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)
    )
    return model.fit(arena, gp.data.labels_from_winner(arena))


# ------------------------------------------------------------------- formats
def test_lmsys_rows_read_back_unchanged(arena, tmp_path, caplog):
    path = tmp_path / "train.csv"
    arena.to_csv(path, index=False)
    with caplog.at_level(logging.INFO, logger="gemma_pref.data.readers"):
        frame, y = read_preferences(path)
    assert frame.attrs["gemma_pref_format"] == "lmsys"
    assert f"{str(path)!r} holds 715 rows in the 'lmsys' format" in caplog.text
    pd.testing.assert_frame_equal(frame, arena)
    np.testing.assert_array_equal(y, gp.data.labels_from_winner(arena))
    test, y_test = read_preferences(arena.drop(columns=list(gp.data.WINNER_COLUMNS)))
    assert y_test is None and test.attrs["gemma_pref_format"] == "lmsys"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv", None])
def test_wsdm_rows_give_the_arena_rows_and_the_same_probabilities(
    arena, structure_model, tmp_path, suffix
):
    rows, wsdm = wsdm_rows(arena)
    assert len(rows) > 300
    if suffix is None:
        source = wsdm
    else:
        source = tmp_path / f"train{suffix}"
        {
            ".parquet": lambda p: wsdm.to_parquet(p, index=False),
            ".jsonl": lambda p: wsdm.to_json(p, orient="records", lines=True, force_ascii=False),
            ".csv": lambda p: wsdm.to_csv(p, index=False),
        }[suffix](source)
    frame, y = read_preferences(source)
    assert frame.attrs["gemma_pref_format"] == "wsdm"
    np.testing.assert_array_equal(y, gp.data.labels_from_winner(rows))
    assert set(y) == {0, 1}
    assert frame.columns.tolist() == [
        "id",
        "model_a",
        "model_b",
        *ARENA_COLUMNS,
        "winner_model_a",
        "winner_model_b",
        "language",
    ]
    assert [str(i) for i in frame["id"]] == rows["id"].astype(str).tolist()  # CSV: ints
    assert (frame["language"] == "English").all()
    assert_same_rows(frame, rows)
    expected = structure_model.predict_proba(rows)
    np.testing.assert_array_equal(structure_model.predict_proba(frame), expected)
    # and the estimators take the plain-string frame as it is, with no reader
    np.testing.assert_array_equal(structure_model.predict_proba(wsdm), expected)


def test_wsdm_format_keeps_answers_that_look_like_json(arena):
    rows, wsdm = wsdm_rows(arena)
    wsdm = wsdm.head(3).copy()
    wsdm.loc[0, "response_a"] = '["a"]'
    wsdm.loc[1, "response_b"] = "[citation needed]"
    # one answer looks like a JSON list, the other cells do not: refused, naming it
    with pytest.raises(
        ArenaFormatError,
        match=re.escape(
            "ambiguous text cells: 1 cell starts like a JSON list of turns and 8 do not "
            f"(those that do: response_a at row 0 (id {wsdm.loc[0, 'id']!r}): '[\"a\"]')"
        )
        + ".*pass format='wsdm' or cell_format='text'",
    ):
        read_preferences(wsdm)
    for settled in ({"format": "wsdm"}, {"cell_format": "text"}):
        frame, _ = read_preferences(wsdm, **settled)
        assert parse_turns(frame.loc[0, "response_a"]) == ['["a"]']  # verbatim, not parsed
        assert parse_turns(frame.loc[1, "response_b"]) == ["[citation needed]"]
        assert frame.attrs["gemma_pref_cells"] == "json"


@pytest.mark.parametrize("store", ["frame", ".parquet", ".jsonl", ".json", ".csv"])
def test_lmarena_conversations_give_the_arena_rows_and_the_same_probabilities(
    arena, structure_model, tmp_path, store
):
    lm = lmarena_rows(arena)
    source = lm
    if store == ".parquet":
        source = tmp_path / "arena.parquet"
        lm.to_parquet(source, index=False)  # lists of structs: numpy arrays of dicts
    elif store == ".jsonl":
        source = tmp_path / "arena.jsonl"
        lm.to_json(source, orient="records", lines=True)
    elif store == ".json":
        source = tmp_path / "arena.json"
        lm.to_json(source, orient="records")
    elif store == ".csv":  # message lists as JSON strings
        source = tmp_path / "arena.csv"
        lm.assign(
            conversation_a=lm["conversation_a"].map(json.dumps),
            conversation_b=lm["conversation_b"].map(json.dumps),
        ).to_csv(source, index=False)
    frame, y = read_preferences(source)
    assert frame.attrs["gemma_pref_format"] == "lmarena"
    np.testing.assert_array_equal(y, gp.data.labels_from_winner(arena))
    assert frame.columns.tolist() == [*arena.columns, "turn"]
    assert frame["id"].tolist() == arena["id"].tolist()  # question_id is the id
    assert_same_rows(frame, arena)  # multi-turn rows keep every turn
    assert max(len(t) for t in _turns(frame, "prompt")) > 1
    np.testing.assert_array_equal(
        structure_model.predict_proba(frame), structure_model.predict_proba(arena)
    )


def test_lmarena_both_kinds_of_tie_are_a_tie(arena):
    lm = lmarena_rows(arena.head(4))
    lm["winner"] = ["model_a", "tie", "tie (bothbad)", "model_b"]
    frame, y = read_preferences(lm)
    assert y.tolist() == [0, 2, 2, 1]
    assert frame["winner_tie"].tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("conversational", [False, True])
def test_chosen_rejected_pairs_are_balanced_seeded_and_the_same_rows(
    arena, structure_model, conversational
):
    decided, pairs = chosen_rejected_rows(arena, conversational)
    frame, y = read_preferences(pairs, random_state=0)
    assert frame.attrs["gemma_pref_format"] == "chosen_rejected"
    counts = np.bincount(y, minlength=2)
    assert len(counts) == 2 and abs(counts[0] - counts[1]) <= 1  # balanced
    again, y_again = read_preferences(pairs, random_state=0)
    pd.testing.assert_frame_equal(again, frame)
    np.testing.assert_array_equal(y_again, y)
    _, y_other = read_preferences(pairs, random_state=1)
    assert (y_other != y).any()
    assert "id" not in frame.columns  # no row position passes for an id
    assert frame["source"].tolist() == ["arena"] * len(pairs)
    # the sample's rows, with the answers in the order read_preferences drew
    truth = gp.data.labels_from_winner(decided)
    flip = y != truth
    expected = pd.concat([decided[~flip], gp.models.swap_ab(decided[flip])]).sort_index()
    assert_same_rows(frame, expected)
    np.testing.assert_array_equal(
        structure_model.predict_proba(frame), structure_model.predict_proba(expected)
    )


def test_chosen_rejected_with_an_explicit_prompt_of_messages():
    pairs = pd.DataFrame(
        {
            "prompt": [[{"role": "user", "content": "¿Capital de Francia?"}]],
            "chosen": [[{"role": "assistant", "content": "París."}]],
            "rejected": [[{"role": "assistant", "content": "Lyon."}]],
            "score_chosen": [9.0],
            "score_rejected": [2.0],
        }
    )
    frame, y = read_preferences(pairs, random_state=0)
    winner = "a" if y[0] == 0 else "b"
    assert parse_turns(frame.loc[0, "prompt"]) == ["¿Capital de Francia?"]
    assert parse_turns(frame.loc[0, f"response_{winner}"]) == ["París."]
    assert frame.loc[0, f"score_{winner}"] == 9.0  # per-answer columns follow the answer
    assert "score_chosen" not in frame.columns


# ----------------------------------------------------------- two-class tasks
def test_two_class_fit_predict_cv_plots_persistence_submission(arena, tmp_path):
    rows, wsdm = wsdm_rows(arena)
    frame, y = read_preferences(wsdm)
    model = gp.SwapABClassifier(
        make_pipeline(ArenaStructureFeatures(), StandardScaler(), LogisticRegression(C=0.01))
    )
    model.fit(wsdm, y)  # plain strings, no conversion
    np.testing.assert_array_equal(model.classes_, [0, 1])
    proba = model.predict_proba(wsdm)
    assert proba.shape == (len(wsdm), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict_proba(frame), proba)
    # swapping the answers swaps the two columns (and the winner strings)
    swapped = gp.models.swap_ab(wsdm)
    np.testing.assert_array_equal(gp.data.labels_from_winner(swapped), 1 - y)
    np.testing.assert_allclose(model.predict_proba(swapped), proba[:, ::-1], atol=1e-12)

    report = gp.cross_validate_preference(model, wsdm, y, folds=3)
    assert report.oof.shape == (len(wsdm), 2) and report.classes.tolist() == [0, 1]
    summary = report.to_dict()
    assert summary["competition_metric"].startswith("accuracy (WSDM Cup 2025")
    assert 0.0 < summary["accuracy"] <= 1.0
    assert summary["class_prior_accuracy"] == max(np.bincount(y)) / len(y)
    groups = gp.evaluation.prompt_groups(wsdm)
    for train, test in gp.PromptGroupKFold(3).split(wsdm, y):
        assert set(groups[train]).isdisjoint(groups[test])
    paths = gp.evaluation.plots.save_cv_plots(y, report.oof, tmp_path / "cv", title="two classes")
    assert all(p.stat().st_size > 0 for p in paths)
    assert [
        ax.get_title() for ax in gp.evaluation.plots.plot_reliability(y, report.oof).axes[:2]
    ] == [
        "model_a wins",
        "model_b wins",
    ]

    saved = gp.save(model, tmp_path / "two.joblib")
    np.testing.assert_array_equal(gp.load(saved).predict_proba(wsdm), proba)
    sub = gp.write_submission(wsdm["id"], proba, tmp_path / "submission.csv", format="wsdm")
    written = pd.read_csv(sub, dtype={"id": str})
    assert written.columns.tolist() == ["id", "winner"]
    assert written["id"].tolist() == wsdm["id"].tolist()
    np.testing.assert_array_equal(
        written["winner"].to_numpy(), np.where(proba[:, 1] > proba[:, 0], "model_b", "model_a")
    )


def test_two_class_every_recipe(arena, tiny_gemma):
    _, wsdm = wsdm_rows(arena)
    small = wsdm.head(40)
    y = gp.data.labels_from_winner(small)
    pairwise = gp.make_preference_pipeline(
        tiny_gemma, max_length=32, dtype="float32", backend="torch", cache_dir=None
    ).fit(small, y)
    assert isinstance(pairwise, gp.PreferenceBlendClassifier)
    assert pairwise.predict_proba(small).shape == (40, 2)
    from gemma_pref.pipeline import make_recipe_classifier, make_recipe_formatter

    # the pair texts under the token budget: no answer truncated away (TruncationWarning)
    budget = make_recipe_formatter("embedding", tiny_gemma, max_length=32, budget=True)
    for recipe, extra in (
        ("seed", {}),
        ("embedding", {"swap_augment": True, "formatter": budget}),
        ("structure", {}),
    ):
        classifier = make_recipe_classifier(recipe, iterations=20) if recipe == "seed" else None
        settings = dict(max_length=32, dtype="float32", backend="torch", cache_dir=None)
        model = gp.make_preference_pipeline(
            None if recipe == "structure" else tiny_gemma,
            recipe=recipe,
            classifier=classifier,
            **({} if recipe == "structure" else settings),
            **extra,
        ).fit(small, y)
        np.testing.assert_array_equal(model.classes_, [0, 1])
        assert model.predict_proba(small).shape == (40, 2), recipe
    finetune = gp.make_preference_pipeline(
        tiny_gemma,
        recipe="finetune",
        max_length=32,
        dtype="float32",
        lora_r=4,
        batch_size=8,
        random_state=0,
    ).fit(small.head(16), y[:16])
    np.testing.assert_array_equal(finetune.classes_, [0, 1])
    proba = finetune.predict_proba(small.head(4))
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


# ----------------------------------------------------------- hostile inputs
def _conversation(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


GOOD_A = _conversation(("user", "Q"), ("assistant", "A"))
GOOD_B = _conversation(("user", "Q"), ("assistant", "B"))


def _lm(a, b, winner="model_a"):
    return pd.DataFrame(
        {
            "id": [7, 8],
            "conversation_a": [GOOD_A, a],
            "conversation_b": [GOOD_B, b],
            "winner": ["model_a", winner],
        }
    )


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (
            _conversation(("system", "be nice"), ("user", "Q"), ("assistant", "A")),
            GOOD_B,
            "conversation_a at row 1 (id 8): message 0 has role 'system'; expected 'user' or 'assistant'",
        ),
        (
            _conversation(("assistant", "A"), ("user", "Q")),
            GOOD_B,
            "conversation_a at row 1 (id 8): message 0 has role 'assistant'; expected 'user'",
        ),
        (
            GOOD_A,
            [],
            "conversation_b at row 1 (id 8): expected a list of {'role', 'content'} messages, got an empty list",
        ),
        (
            GOOD_A,
            [{"role": "user"}],
            "conversation_b at row 1 (id 8): message 0 must be a mapping with 'role' and 'content'",
        ),
        (
            GOOD_A,
            "hello",
            "conversation_b at row 1 (id 8): expected a list of {'role', 'content'} messages (or a JSON string of one), got the string 'hello'",
        ),
        (
            GOOD_A,
            _conversation(("user", "Q"), ("assistant", 3)),
            "conversation_b at row 1 (id 8): message 1 (assistant) has content of type int 3; expected a string",
        ),
        (
            GOOD_A,
            _conversation(("user", "Another question"), ("assistant", "B")),
            "conversation_a and conversation_b at row 1 (id 8): the user turns differ (turn 0",
        ),
    ],
)
def test_lmarena_bad_messages_name_column_row_and_message(a, b, match):
    with pytest.raises(ArenaFormatError, match=re.escape(match)) as info:
        read_preferences(_lm(a, b))
    assert info.value.row == 1


def test_lmarena_winner_outside_the_known_set():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "winner at row 1 (id 8): expected one of 'model_a', 'model_b', 'tie', 'tie (bothbad)', got 'both'"
        ),
    ):
        read_preferences(_lm(GOOD_A, GOOD_B, winner="both"))


def test_parquet_with_nested_nulls_names_the_row(tmp_path):
    cases = {
        "a null message": [GOOD_A[0], None],
        "a null conversation": None,
        "a null role": [{"role": None, "content": "Q"}],
    }
    expected = {
        "a null message": "conversation_b at row 1 (id 8): message 1 must be a mapping with 'role' and 'content'; got None",
        "a null conversation": "conversation_b at row 1 (id 8): expected a list of {'role', 'content'} messages, got NoneType None",
        "a null role": "conversation_b at row 1 (id 8): message 0 has role None; expected 'user' or 'assistant'",
    }
    for name, cell in cases.items():
        path = tmp_path / "nulls.parquet"
        _lm(GOOD_A, cell).to_parquet(path, index=False)
        with pytest.raises(ArenaFormatError, match=re.escape(expected[name])):
            read_preferences(path)
    # a null content is a missing answer, as a JSON null turn of the LMSYS files
    _lm(GOOD_A, _conversation(("user", "Q"), ("assistant", None))).to_parquet(path, index=False)
    frame, _ = read_preferences(path)
    assert parse_turns(frame.loc[1, "response_b"]) == [""]


def test_columns_that_match_no_format_name_the_columns_and_the_formats():
    with pytest.raises(ValueError) as info:
        read_preferences(pd.DataFrame({"question": ["q"], "answer": ["a"]}))
    message = str(info.value)
    assert "columns ['question', 'answer']" in message
    for name in gp.data.readers.PREFERENCE_FORMATS:
        assert repr(name) in message
    with pytest.raises(
        ValueError, match=re.escape("Missing column(s) 'rejected' of the 'chosen_rejected' format")
    ):
        read_preferences(pd.DataFrame({"prompt": ["q"], "chosen": ["a"]}), format="chosen_rejected")
    with pytest.raises(
        ValueError, match=re.escape("Missing column(s) 'conversation_b' of the 'lmarena' format")
    ):
        read_preferences(pd.DataFrame({"conversation_a": [GOOD_A]}), format="lmarena")
    with pytest.raises(
        ValueError, match=re.escape("Missing column(s) 'response_b' of the 'wsdm' format")
    ):
        read_preferences(
            pd.DataFrame({"prompt": ["q"], "response_a": ["a"], "winner": ["model_a"]}),
            format="wsdm",
        )
    with pytest.raises(ValueError, match="format must be 'auto' or one of 'lmsys', 'wsdm'"):
        read_preferences(pd.DataFrame({"prompt": ["q"]}), format="hf")


def test_wsdm_bad_cells_and_labels_name_column_and_row():
    base = {
        "id": ["x", "y"],
        "prompt": ["q", "q"],
        "response_a": ["a", "a"],
        "response_b": ["b", "b"],
    }
    with pytest.raises(
        ValueError,
        match=re.escape(
            "winner at row 1 (id 'y'): expected one of 'model_a', 'model_b', 'tie', 'tie (bothbad)', got 'A'"
        ),
    ):
        read_preferences(pd.DataFrame({**base, "winner": ["model_a", "A"]}))
    bad = pd.DataFrame({**base, "winner": ["model_a", "model_b"]})
    bad["response_b"] = pd.Series(["b", 12], dtype=object)
    with pytest.raises(
        ArenaFormatError,
        match=re.escape(
            "response_b at row 1 (id 'y'): expected a string (cell_format='text': each cell "
            "is one turn of plain text), got int 12"
        ),
    ):
        read_preferences(bad)
    onehot = pd.DataFrame({**base, "winner_model_a": [1, 0]})
    with pytest.raises(ValueError, match="expected both winner_model_a and winner_model_b"):
        read_preferences(onehot)


def test_chosen_rejected_bad_rows_name_column_and_row():
    with pytest.raises(
        ArenaFormatError,
        match=re.escape(
            "rejected at row 1: expected a string or a list of messages, got a missing value"
        ),
    ):
        read_preferences(
            pd.DataFrame({"prompt": ["q", "q"], "chosen": ["a", "a"], "rejected": ["b", None]})
        )
    with pytest.raises(
        ArenaFormatError, match=re.escape("chosen at row 0: an answer without a prompt")
    ):
        read_preferences(pd.DataFrame({"chosen": ["a"], "rejected": ["b"]}))
    differ = pd.DataFrame(
        {
            "chosen": [_conversation(("user", "Q1"), ("assistant", "A"))],
            "rejected": [_conversation(("user", "Q2"), ("assistant", "B"))],
        }
    )
    with pytest.raises(
        ArenaFormatError,
        match=re.escape("chosen and rejected at row 0: the user turns differ (turn 0"),
    ):
        read_preferences(differ)


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="preference file not found"):
        read_preferences(tmp_path / "none.parquet")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(ValueError, match=r"cannot read .*x.txt.*: expected a file ending in \.csv"):
        read_preferences(tmp_path / "x.txt")
    (tmp_path / "x.jsonl").write_text('{"prompt": "q"}\nnot json\n')
    with pytest.raises(ValueError, match=r"x.jsonl' is not JSON Lines"):
        read_preferences(tmp_path / "x.jsonl")
