from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import gemma_pref as gp
from gemma_pref import load_arena_csv, write_submission
from gemma_pref.data import labels_from_winner


def test_labels_from_winner_on_sample(arena):
    y = labels_from_winner(arena)
    assert y.dtype == np.int64 and set(y) == {0, 1, 2}
    assert (y == 0).sum() == arena["winner_model_a"].sum()
    assert (y == 2).sum() == arena["winner_tie"].sum()


def test_labels_from_winner_errors():
    df = pd.DataFrame(
        {"winner_model_a": [1, 1], "winner_model_b": [0, 1], "winner_tie": [0, 0]}, index=["a", "b"]
    )
    with pytest.raises(ValueError, match="row 'b': expected exactly one 1"):
        labels_from_winner(df)
    # without winner_tie the same row is still not one-hot among the two
    with pytest.raises(
        ValueError,
        match=r"row 'b': expected exactly one 1 among winner_model_a, winner_model_b, got \[1, 1\]",
    ):
        labels_from_winner(df.drop(columns="winner_tie"))
    with pytest.raises(
        ValueError, match=r"Missing label column.*'winner' column.*got columns \['winner_model_a'\]"
    ):
        labels_from_winner(df[["winner_model_a"]])


def test_two_class_labels_from_two_onehot_columns_and_from_winner(arena):
    decided = arena[arena["winner_tie"] == 0]
    y3 = labels_from_winner(decided)
    y2 = labels_from_winner(decided.drop(columns="winner_tie"))
    np.testing.assert_array_equal(y2, y3)
    assert set(y2) == {0, 1}
    winner = pd.DataFrame({"winner": np.array(["model_a", "model_b"])[y2]}, index=decided.index)
    np.testing.assert_array_equal(labels_from_winner(winner), y2)
    ties = pd.DataFrame({"winner": ["tie", "tie (bothbad)", "model_b"]})
    np.testing.assert_array_equal(labels_from_winner(ties), [2, 2, 1])


@pytest.mark.parametrize("bad", ["draw", "Model_A", None, 1.0])
def test_winner_value_outside_the_known_set_names_row_id_and_value(bad):
    df = pd.DataFrame({"id": [10, 11], "winner": pd.Series(["model_a", bad], dtype=object)})
    df.index = ["r0", "r1"]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "winner at row 'r1' (id 11): expected one of 'model_a', 'model_b', 'tie', "
            f"'tie (bothbad)', got {bad!r}"
        ),
    ):
        labels_from_winner(df)


def test_write_submission(tmp_path):
    path = write_submission(
        ["x", "y"], np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]), tmp_path / "s.csv"
    )
    df = pd.read_csv(path)
    assert list(df.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    np.testing.assert_allclose(df.iloc[:, 1:].to_numpy(), [[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
    assert not list(tmp_path.glob(".*tmp"))


def test_h_submissions_are_never_renormalised_nor_ambiguous(tmp_path):
    """Case h of the input-trust issue: rows that do not sum to 1, duplicate
    classes and duplicate ids are refused, naming what is wrong."""
    out = tmp_path / "s.csv"
    with pytest.raises(ValueError, match=r"proba row 0 \(id 'x'\) sums to 4\.0, not 1"):
        write_submission(["x", "y"], [[2.0, 1.0, 1.0], [0.2, 0.3, 0.5]], out)
    with pytest.raises(ValueError, match=r"classes names the label\(s\) \[0\] of more than one"):
        write_submission(["x"], [[0.5, 0.5]], out, format="wsdm", classes=[0, 0])
    # labels that are not 0, 1 or 2 are refused, not cast to int
    with pytest.raises(ValueError, match=r"got \[False, True\]: y holds booleans"):
        write_submission(["x"], [[0.5, 0.5]], out, format="wsdm", classes=[False, True])
    with pytest.raises(ValueError, match=r"got \[0\.5, 1\]: y at position 0: expected 0"):
        write_submission(["x"], [[0.5, 0.5]], out, format="wsdm", classes=[0.5, 1])
    with pytest.raises(ValueError, match=r"id 'x' appears twice \(rows 0 and 2\)"):
        write_submission(["x", "y", "x"], [[0.2, 0.3, 0.5]] * 3, out)
    assert not out.exists()
    # float rounding within the tolerance is not an error
    write_submission(["x"], [[0.2, 0.3, 0.5 + 1e-9]], out)


@pytest.mark.parametrize(
    ("ids", "proba", "match"),
    [
        ([1], [[0.5, 0.5, 0.0, 0.0]], r"shape \(n_rows, 3\)"),
        ([1], [[0.5, 0.5]], "model knows only the classes model_a and model_b"),
        ([1, 2], [[0.2, 0.3, 0.5]], "ids has 2 entries but proba has 1 rows"),
        ([1], [[np.nan, 0.5, 0.5]], r"row 0 \(id 1\) is not a probability vector"),
        ([1], [[-0.1, 0.6, 0.5]], "not a probability vector"),
    ],
)
def test_write_submission_errors(tmp_path, ids, proba, match):
    with pytest.raises(ValueError, match=match):
        write_submission(ids, proba, tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_write_submission_wsdm(tmp_path):
    path = write_submission(
        ["q1", "q2", "q3"],
        [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]],
        tmp_path / "s.csv",
        format="wsdm",
    )
    df = pd.read_csv(path)
    assert df.columns.tolist() == ["id", "winner"]
    assert df["winner"].tolist() == ["model_a", "model_b", "model_a"]
    # three-class probabilities: the more probable of the two answers, ties ignored
    path = write_submission([1, 2], [[0.2, 0.3, 0.5], [0.4, 0.1, 0.5]], path, format="wsdm")
    assert pd.read_csv(path)["winner"].tolist() == ["model_b", "model_a"]
    # columns follow classes: [1, 0] puts model_b first
    path = write_submission([1], [[0.9, 0.1]], path, format="wsdm", classes=[1, 0])
    assert pd.read_csv(path)["winner"].tolist() == ["model_b"]
    with pytest.raises(ValueError, match="format must be one of 'lmsys', 'wsdm'; got 'csv'"):
        write_submission([1], [[0.5, 0.5]], path, format="csv")


def test_load_arena_csv(tmp_path, arena):
    path = tmp_path / "train.csv"
    arena.head(3).to_csv(path, index=False)
    assert load_arena_csv(path, require_labels=True).shape == (3, 9)
    arena.head(3).drop(columns=["response_b"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="lacks column.*'response_b'"):
        load_arena_csv(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_arena_csv(tmp_path / "nope.csv")


def test_outputs_get_the_permissions_of_a_plain_open(tmp_path, arena):
    """Atomic writes go through mkstemp (0o600); the final files must not."""
    import os
    import stat

    import gemma_pref as gp
    from gemma_pref.embedding.cache import DiskCache

    old = os.umask(0o022)
    os.umask(old)
    expected = 0o666 & ~old
    sub = write_submission([1, 2], np.full((2, 3), 1 / 3), tmp_path / "submission.csv")
    saved = gp.save(gp.ArenaTextFormatter(), tmp_path / "formatter.joblib")
    cache = DiskCache(tmp_path / "cache", "f" * 64, {"model": "none"})
    cache.put("ab" * 16, np.ones(4, dtype=np.float32))
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert entries
    for path in [sub, saved, *entries]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert not list(tmp_path.rglob("*.tmp"))
    # like open(path, "w"): a replaced file keeps its mode, and the umask is
    # read at each write, not once
    os.chmod(sub, 0o600)
    write_submission([1, 2], np.full((2, 3), 1 / 3), sub)
    assert stat.S_IMODE(sub.stat().st_mode) == 0o600
    old = os.umask(0o077)
    try:
        fresh = write_submission([1], np.full((1, 3), 1 / 3), tmp_path / "private.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_h_disagreeing_label_columns_and_booleans_are_refused(arena):
    rows = arena.head(6).copy()
    y = labels_from_winner(rows)
    rows["winner"] = np.array(["model_a", "model_b", "tie"])[y]
    np.testing.assert_array_equal(labels_from_winner(rows), y)  # they agree: fine
    rows.loc[rows.index[4], "winner"] = "model_a" if y[4] != 0 else "model_b"
    with pytest.raises(
        ValueError,
        match=r"the label columns disagree in 1 of 6 rows \(row 4 \(id "
        + str(rows["id"].tolist()[4]),
    ):
        labels_from_winner(rows)
    from gemma_pref.data.schema import check_labels

    for bad in (np.array([True, False]), [True, 0], pd.Series([False, True])):
        with pytest.raises(ValueError, match="y holds booleans"):
            check_labels(bad)
    with pytest.raises(ValueError, match="y holds booleans"):
        gp.make_preference_pipeline(recipe="structure").fit(arena.head(20), np.arange(20) % 2 == 0)
