"""One reading rule per frame: text cells are never read by what one cell looks like.

Regression tests of the faults seen with rows shaped like users' data (a plain
answer that looks like a JSON list rewritten, "NA" answers emptied, a JSON
answer breaking a chosen/rejected read, a plain cell flipping a file's format,
row positions passing for ids, answer columns swapped by position), and a
property-based corpus of answer texts that look like JSON lists, JSON
objects, message lists, missing-value markers, whitespace, very long texts,
control characters and mixed scripts: through every entry point (DataFrame,
CSV, Parquet, JSON Lines, the command line) each answer reaches the
formatted text verbatim, or the read fails naming the row and the column.
The Ray entry point is tested in test_distributed.py, beside its cluster.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gemma_pref as gp
from gemma_pref.cli import main
from gemma_pref.data.readers import read_preferences
from gemma_pref.exceptions import ArenaFormatError, MissingCellsWarning
from gemma_pref.text.formatting import parse_turns

APPLE = '["apple", "banana"]'
JSON_ANSWER = '[{"MSG":"OK","TC":1001,"DATA":[1,2]}]'
MESSAGE_TEXT = '[{"role":"assistant","content":"X"}]'
#: Answers that look like something other than text, and the strings pandas
#: reads as missing by default.
LOOKALIKES = [
    APPLE,
    "[]",
    "[null]",
    '["a"] and more',
    '{"a": 1}',
    MESSAGE_TEXT,
    JSON_ANSWER,
    "[{'role': 'user', 'content': 'hi'}]",
    "NA",
    "N/A",
    "None",
    "null",
    "NULL",
    "nan",
    "NaN",
    "-nan",
    "#N/A",
    "<NA>",
    "True",
    "0",
    " ",
    "\n\t",
    "",
]


def _answers(frame):
    """The texts the model would see for each answer (pair layout, answer only)."""
    fmt = gp.ArenaTextFormatter(layout="pair", template="{response}")
    return fmt.fit_transform(frame)


def wsdm_frame(answers_a, answers_b, prompt="What do you think?"):
    n = len(answers_a)
    return pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(n)],
            "prompt": [f"{prompt} ({i})" for i in range(n)],
            "response_a": list(answers_a),
            "response_b": list(answers_b),
        }
    )


# ------------------------------------------------------------- the cases seen
def test_a_plain_answer_that_looks_like_a_json_list_is_never_rewritten():
    frame = wsdm_frame(["Sure.", APPLE, "Plums."], ["No.", "Pears.", "Figs."])
    # straight to the formatter, the structure features, the folds: refused,
    # naming the row and the parameter, never read as two turns
    match = re.escape(
        f"1 cell starts like a JSON list of turns and 8 do not (those that do: "
        f"response_a at row 1 (id 'q1'): '{APPLE}')"
    )
    for read in (
        lambda: gp.ArenaTextFormatter().fit_transform(frame),
        lambda: gp.ArenaStructureFeatures().fit_transform(frame),
        lambda: gp.evaluation.prompt_groups(frame),
    ):
        with pytest.raises(ArenaFormatError, match=match + ".*cell_format='text'") as info:
            read()
        assert info.value.column == "response_a" and info.value.row == 1
    # settled: the answer is one turn, verbatim, everywhere
    texts = gp.ArenaTextFormatter(layout="pair", template="{response}", cell_format="text")
    assert texts.fit_transform(frame)[1, 0] == APPLE
    read, _ = read_preferences(frame, format="wsdm")
    assert _answers(read)[1, 0] == APPLE
    features = gp.ArenaStructureFeatures(cell_format="text").fit_transform(frame)
    np.testing.assert_array_equal(features, gp.ArenaStructureFeatures().fit_transform(read))
    assert gp.evaluation.prompt_groups(frame, cell_format="text").tolist() == [0, 1, 2]
    # the pipeline: refused as it is, the same model as the read rows once settled
    rows = wsdm_frame([APPLE, "Yes.", "Well."] * 8, ["Hm.", "No.", "Sure thing."] * 8)
    rows["prompt"] = [f"q{i % 8}" for i in range(len(rows))]
    y = np.arange(len(rows)) % 3
    with pytest.raises(ArenaFormatError, match="ambiguous text cells.*cell_format='text'"):
        gp.make_preference_pipeline(recipe="structure").fit(rows, y)
    model = gp.make_preference_pipeline(recipe="structure", cell_format="text").fit(rows, y)
    read, _ = read_preferences(rows, format="wsdm")
    again = gp.make_preference_pipeline(recipe="structure").fit(read, y)
    np.testing.assert_allclose(model.predict_proba(rows), again.predict_proba(read))


def test_b_chosen_rejected_json_answers_are_text(arena):
    pairs = pd.DataFrame(
        {
            "prompt": ["Status?", "Say X.", "Hi"],
            "chosen": [JSON_ANSWER, "X", "Hello!"],
            "rejected": ["Unknown.", "Y", "Go away."],
        }
    )
    # a JSON answer that is not a message list is text, like its neighbours
    frame, y = read_preferences(pairs, random_state=0)
    chosen = [_answers(frame)[i, int(y[i])] for i in range(3)]
    assert chosen == [JSON_ANSWER, "X", "Hello!"]
    # an answer that reads as a message list among plain answers: refused
    pairs.loc[1, "chosen"] = MESSAGE_TEXT
    with pytest.raises(
        ArenaFormatError,
        match=re.escape("ambiguous cells in 'chosen', 'rejected': 1 hold a list of")
        + ".*chosen at row 1: "
        + re.escape(repr(MESSAGE_TEXT)[:37])
        + ".*cell_format='text'",
    ):
        read_preferences(pairs)
    frame, y = read_preferences(pairs, cell_format="text", random_state=0)
    assert _answers(frame)[1, int(y[1])] == MESSAGE_TEXT  # verbatim, never unwrapped
    # message lists everywhere are messages, as Hugging Face datasets hold them
    conversational = pairs.assign(
        chosen=[[{"role": "assistant", "content": c}] for c in ("A", "B", "C")],
        rejected=[[{"role": "assistant", "content": c}] for c in ("D", "E", "F")],
    )
    frame, y = read_preferences(conversational, random_state=0)
    assert [_answers(frame)[i, int(y[i])] for i in range(3)] == ["A", "B", "C"]


def test_c_load_arena_csv_keeps_na_answers_and_reports_missing_ones(tmp_path):
    frame = wsdm_frame(["NA", "None", "null"], ["nan", "", "N/A"])
    frame = frame.assign(
        prompt=frame["prompt"].map(lambda p: json.dumps([p])),
        response_a=frame["response_a"].map(lambda a: json.dumps([a])),
    )
    frame.loc[1, "response_b"] = None
    path = tmp_path / "test.csv"
    frame.to_csv(path, index=False)
    # plain strings in response_b: the raw file mixes them with JSON lists
    with pytest.warns(
        MissingCellsWarning,
        match=re.escape("1 text cell is missing (response_b: 1; row 1 (id 'q1'))"),
    ):
        df = gp.load_arena_csv(path)
    assert df["response_b"].tolist()[0] == "nan" and df["response_b"].tolist()[2] == "N/A"
    assert [parse_turns(c) for c in df["response_a"]] == [["NA"], ["None"], ["null"]]
    csv = tmp_path / "plain.csv"
    wsdm_frame(["NA", "None"], ["null", "nan"]).to_csv(csv, index=False)
    read, _ = read_preferences(csv, format="wsdm")
    assert _answers(read).tolist() == [["NA", "null"], ["None", "nan"]]


def test_d_one_plain_cell_does_not_flip_a_file_of_json_lists(arena, tmp_path, capsys):
    rows = arena.head(5).copy()
    rows.loc[rows.index[3], "response_b"] = "a plain answer"
    test = tmp_path / "test.csv"
    rows.drop(columns=list(gp.data.WINNER_COLUMNS)).to_csv(test, index=False)
    with pytest.raises(
        ArenaFormatError,
        match=re.escape(
            f"14 cells start like a JSON list of turns and 1 does not (those that do not: "
            f"response_b at row 3 (id {rows['id'].tolist()[3]!r}): 'a plain answer')"
        ),
    ):
        read_preferences(test)
    train = tmp_path / "train.csv"
    rows.to_csv(train, index=False)
    assert main(["-q", "cv", "--recipe", "structure", "--train", str(train), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "ambiguous text cells" in err and "--format lmsys or --cell-format json" in err, err


def test_f_ids_are_the_formats_own_and_never_row_positions(arena, tmp_path, capsys):
    lm = pd.DataFrame(
        {
            "question_id": ["a7", "b9"],
            "conversation_a": [
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
            ]
            * 2,
            "conversation_b": [
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
            ]
            * 2,
        }
    )
    frame, _ = read_preferences(lm)
    assert frame["id"].tolist() == ["a7", "b9"] and "question_id" not in frame.columns
    # no ids at all: no id column, and the CLI asks before it numbers the rows
    test = arena.head(6).drop(columns=["id", *gp.data.WINNER_COLUMNS])
    path = tmp_path / "test.csv"
    test.to_csv(path, index=False)
    assert "id" not in read_preferences(path)[0].columns
    model = tmp_path / "model.joblib"
    assert main(["-q", "fit", "--recipe", "structure", "-o", str(model)]) == 0
    out = tmp_path / "sub.csv"
    predict = ["-q", "predict", "--pipeline", str(model), "--test", str(path), "-o", str(out)]
    assert main(predict) == 1
    assert "--positional-ids" in capsys.readouterr().err and not out.exists()
    assert main([*predict, "--positional-ids"]) == 0
    assert pd.read_csv(out)["id"].tolist() == list(range(6))


def test_i_columns_are_checked_by_name_and_every_answer_pair_swaps(make_embedder, arena):
    texts = gp.ArenaTextFormatter(layout="pair").set_output(transform="pandas")
    pairs = texts.fit_transform(arena.head(4))
    assert pairs.columns.tolist() == ["text_a", "text_b"]
    # 512 tokens: no row's two texts are cut to the same prompt prefix (TruncationWarning)
    embedder = make_embedder(max_length=512).fit(pairs)
    with pytest.raises(ValueError, match=re.escape("the text columns ['text_b', 'text_a']")):
        embedder.transform(pairs[["text_b", "text_a"]])
    with pytest.raises(ValueError, match=re.escape("the text columns ['a', 'b']")):
        embedder.transform(pairs.set_axis(["a", "b"], axis=1))
    np.testing.assert_array_equal(embedder.transform(pairs), embedder.transform(pairs.to_numpy()))
    # chosen/rejected columns become per-answer pairs; swapping moves them all
    frame, _ = read_preferences(
        pd.DataFrame(
            {
                "prompt": ["Q1", "Q2"],
                "chosen": ["good", "fine"],
                "rejected": ["bad", "poor"],
                "score_chosen": [9.0, 8.0],
                "score_rejected": [1.0, 2.0],
            }
        ),
        random_state=0,
    )
    swapped = gp.models.swap_ab(frame)
    assert swapped["score_a"].tolist() == frame["score_b"].tolist()
    assert swapped["score_b"].tolist() == frame["score_a"].tolist()
    pd.testing.assert_frame_equal(gp.models.swap_ab(swapped), frame)


# ------------------------------------------------------------- the corpus
_PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_SCRIPTS = ["Paris", "Пари́ж", "巴黎", "باريس", "पेरिस", "😀 emoji", "ｆｕｌｌ"]
_CONTROL = ["\x00", "\x07", "\x1b[31m", "\u200b", "\u2028", "\ufeff", "\r\n", "\t"]
_ANSWER = st.one_of(
    st.sampled_from(LOOKALIKES),
    st.lists(st.sampled_from(_SCRIPTS + _CONTROL + LOOKALIKES), max_size=4).map("".join),
    st.builds(json.dumps, st.lists(st.text(max_size=5), max_size=3)),  # a JSON list of strings
    st.builds(
        json.dumps,
        st.lists(
            st.fixed_dictionaries({"role": st.just("assistant"), "content": st.text(max_size=5)}),
            max_size=2,
        ),
    ),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.integers(1, 3).map(lambda k: ("long answer, " * 2000)[: 9000 * k]),
)


@st.composite
def _rows(draw):
    n = draw(st.integers(1, 4))
    answers = draw(st.lists(_ANSWER, min_size=2 * n, max_size=2 * n))
    return wsdm_frame(answers[:n], answers[n:])


def _write(frame, store, path):
    if store == "csv":
        frame.to_csv(path, index=False)
    elif store == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def _check_read_or_named(read, frame, settled):
    """Each answer verbatim, or (unsettled only) a refusal naming a row and a
    column of the frame's smaller kind of cells (an empty CSV field is missing,
    and reads as the empty answer it was written from)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingCellsWarning)
            out = read()
    except ArenaFormatError as exc:
        assert not settled, f"settled read refused: {exc}"
        assert exc.column in ("prompt", "response_a", "response_b")
        assert str(exc).startswith("ambiguous text cells: ")
        assert re.search(rf"{exc.column} at row {exc.row!r} \(id 'q{exc.row}'\)", str(exc))
        return False
    expected = frame[["response_a", "response_b"]].to_numpy()
    np.testing.assert_array_equal(out, expected)
    return True


@_PROPERTY
@given(frame=_rows(), store=st.sampled_from(["frame", "csv", "parquet", "jsonl"]))
@example(frame=wsdm_frame([APPLE, "NA"], ["", JSON_ANSWER]), store="csv")
@example(frame=wsdm_frame([MESSAGE_TEXT], ["null"]), store="jsonl")
def test_every_answer_reaches_the_text_verbatim_or_the_read_names_it(
    frame, store, tmp_path_factory
):
    source = frame
    if store != "frame":
        source = _write(frame, store, tmp_path_factory.mktemp("rows") / f"rows.{store}")
    # settled (the WSDM format): every answer as written
    _check_read_or_named(lambda: _answers(read_preferences(source, format="wsdm")[0]), frame, True)
    _check_read_or_named(
        lambda: _answers(read_preferences(source, cell_format="text")[0]), frame, True
    )
    # auto: as written, or refused naming a cell
    _check_read_or_named(lambda: _answers(read_preferences(source)[0]), frame, False)
    if store == "frame":  # straight into the estimators
        _check_read_or_named(lambda: _answers(frame), frame, False)


def test_the_command_line_reads_the_corpus_verbatim(tiny_gemma, tmp_path, capsys):
    from gemma_pref.pipeline import make_recipe_formatter
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    frame = wsdm_frame(LOOKALIKES[:12], LOOKALIKES[11:])
    path = _write(frame, "csv", tmp_path / "rows.csv")
    model = ["--model", str(tiny_gemma), "--max-length", "48", "--dtype", "float32"]
    out = tmp_path / "emb.npy"
    embed = ["-q", "embed", "--input", str(path), "-o", str(out), "--backend", "torch", *model]
    assert main([*embed, "--no-cache"]) == 1  # plain answers beside ones like JSON lists
    err = capsys.readouterr().err
    assert "ambiguous text cells" in err and "--format wsdm or --cell-format text" in err, err
    with pytest.warns(MissingCellsWarning, match=r"response_b: 1; row 11 \(id 'q11'\)"):
        assert main([*embed, "--no-cache", "--format", "wsdm"]) == 0
    # the pairwise recipe's texts: each answer with its share of the 48 tokens
    pairs = make_recipe_formatter(
        "pairwise", tiny_gemma, max_length=48, cell_format="text"
    ).fit_transform(frame)
    embedder = gp.GemmaEmbedder(
        tiny_gemma,
        **{**PAIRWISE_DEFAULTS, "max_length": 48, "dtype": "float32", "backend": "torch"},
    )
    np.testing.assert_allclose(np.load(out), embedder.fit(pairs).transform(pairs), atol=1e-5)
