from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gemma_pref import SEED_TEMPLATE, ArenaFormatError, ArenaTextFormatter
from gemma_pref.formatting import parse_turns


def seed_process(input_str):
    """The reference notebook's parser, verbatim."""
    stripped_str = input_str.strip("[]")
    sentences = [s.strip('"') for s in stripped_str.split('","')]
    return sentences[-1] if sentences else ""


def seed_text(row):
    return (
        "<start_of_turn>User prompt: "
        + seed_process(row["prompt"])
        + "\n\nModel A :\n"
        + seed_process(row["response_a"])
        + "\n\n----\n\nModel B:\n"
        + seed_process(row["response_b"])
        + "<end_of_turn><eos>"
    )


def _seed_parses_correctly(row):
    for col in ("prompt", "response_a", "response_b"):
        turns = json.loads(row[col])
        if len(turns) != 1 or turns[0] is None or seed_process(row[col]) != turns[0]:
            return False
    return True


def test_seed_template_parity_byte_for_byte(arena):
    out = ArenaTextFormatter().fit_transform(arena)
    clean = [i for i, (_, row) in enumerate(arena.iterrows()) if _seed_parses_correctly(row)]
    # rows whose raw JSON has no escapes (most answers contain \n escapes)
    assert len(clean) >= 50
    for i in clean:
        assert out[i] == seed_text(arena.iloc[i])
        assert out[i].encode("utf-8") == seed_text(arena.iloc[i]).encode("utf-8")


def test_seed_parity_after_unescaping_every_single_turn_row(arena):
    # The seed keeps JSON escapes verbatim; decoding what it extracted must give
    # exactly our text, for every single-turn row without nulls.
    out = ArenaTextFormatter().fit_transform(arena)
    checked = 0
    for i, (_, row) in enumerate(arena.iterrows()):
        cells = [json.loads(row[c]) for c in ("prompt", "response_a", "response_b")]
        if any(len(t) != 1 or t[0] is None for t in cells):
            continue
        try:
            p, a, b = (
                json.loads('"' + seed_process(row[c]) + '"')
                for c in ("prompt", "response_a", "response_b")
            )
        except json.JSONDecodeError:  # the seed cut an escaped quote in half
            continue
        expected = (
            "<start_of_turn>User prompt: " + p + "\n\nModel A :\n" + a
            + "\n\n----\n\nModel B:\n" + b + "<end_of_turn><eos>"
        )
        assert out[i] == expected
        checked += 1
    assert checked > 550


def test_rows_the_seed_breaks_are_parsed_correctly(arena):
    out = ArenaTextFormatter().fit_transform(arena)
    broken = [
        i
        for i, (_, row) in enumerate(arena.iterrows())
        if len(json.loads(row["prompt"])) == 1 and not _seed_parses_correctly(row)
    ]
    assert broken, "the sample has rows with JSON escapes"
    for i in broken:
        row = arena.iloc[i]
        p, a, b = (json.loads(row[c])[-1] or "" for c in ("prompt", "response_a", "response_b"))
        assert out[i] == SEED_TEMPLATE.format(prompt=p, response_a=a, response_b=b)
        assert out[i] != seed_text(row)


def test_output_is_1d_object_array_of_str_in_input_order(arena):
    shuffled = arena.sample(frac=1.0, random_state=0)
    out = ArenaTextFormatter().fit_transform(shuffled)
    ref = ArenaTextFormatter().fit_transform(arena)
    assert out.shape == (len(arena),) and out.dtype == object
    assert all(isinstance(t, str) for t in out)
    pos = {label: i for i, label in enumerate(arena.index)}
    assert [ref[pos[label]] for label in shuffled.index] == list(out)


def test_null_items_become_empty_strings(arena):
    out = ArenaTextFormatter().fit_transform(arena)
    nulls = [
        i
        for i, (_, row) in enumerate(arena.iterrows())
        if json.loads(row["response_b"])[-1] is None
    ]
    assert len(nulls) >= 1
    for i in nulls:
        assert out[i].endswith("\n\nModel B:\n<end_of_turn><eos>")
        assert "null" not in out[i][-40:]


def test_nan_cell_and_empty_list_format_as_empty():
    df = pd.DataFrame(
        {"prompt": ['["q"]', '["q"]'], "response_a": [np.nan, "[]"], "response_b": ['["b"]', '["b"]']}
    )
    out = ArenaTextFormatter(template="{prompt}|{response_a}|{response_b}").fit_transform(df)
    assert list(out) == ["q||b", "q||b"]


def test_multi_turn_last_and_all():
    df = pd.DataFrame(
        {
            "prompt": [json.dumps(["p1", "p2"]), json.dumps(["solo"])],
            "response_a": [json.dumps(["a1", None]), json.dumps(["ra"])],
            "response_b": [json.dumps(["b1", "b2"]), json.dumps(["rb"])],
        }
    )
    tmpl = "{prompt}|{response_a}|{response_b}"
    last = ArenaTextFormatter(template=tmpl).fit_transform(df)
    assert last[0] == "p2||b2"
    every = ArenaTextFormatter(turns="all", template=tmpl).fit_transform(df)
    assert every[0] == (
        "[Turn 1] p1\n\n[Turn 2] p2|[Turn 1] a1\n\n[Turn 2] |[Turn 1] b1\n\n[Turn 2] b2"
    )
    # single-turn rows are the same in both modes
    assert every[1] == last[1] == "solo|ra|rb"


def test_multi_turn_rows_of_the_sample(arena):
    every = ArenaTextFormatter(turns="all").fit_transform(arena)
    last = ArenaTextFormatter().fit_transform(arena)
    for i, (_, row) in enumerate(arena.iterrows()):
        prompts = json.loads(row["prompt"])
        if len(prompts) > 1:
            assert f"[Turn {len(prompts)}] " in every[i]
            assert all((p or "") in every[i] for p in prompts)
            assert "[Turn" not in last[i] or "[Turn" in row["prompt"]
        else:
            assert every[i] == last[i]


def test_escaped_quotes_and_commas_survive():
    cell = json.dumps(['He said "a","b" and left', 'x\\y'])
    assert parse_turns(cell) == ['He said "a","b" and left', "x\\y"]


def test_swap_exchanges_the_answers(arena):
    out = ArenaTextFormatter(swap=True, template="{response_a}#{response_b}").fit_transform(arena.head(5))
    ref = ArenaTextFormatter(template="{response_b}#{response_a}").fit_transform(arena.head(5))
    assert list(out) == list(ref)


def test_callable_template():
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a"]'], "response_b": ['["b"]']})
    out = ArenaTextFormatter(template=lambda p, a, b: f"{p}:{a}:{b}").fit_transform(df)
    assert list(out) == ["p:a:b"]
    with pytest.raises(TypeError, match="must return a str"):
        ArenaTextFormatter(template=lambda p, a, b: 3).fit_transform(df)


@pytest.mark.parametrize(
    ("template", "match"),
    [("{prompt} {model_a}", "model_a"), ("{} {}", "positional")],
)
def test_bad_template_is_rejected_in_fit(template, match):
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a"]'], "response_b": ['["b"]']})
    with pytest.raises(ValueError, match=match):
        ArenaTextFormatter(template=template).fit(df)


def test_missing_column_is_named():
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a"]']})
    with pytest.raises(ValueError, match="Missing column.*'response_b'"):
        ArenaTextFormatter().fit_transform(df)


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ('["ok", ', "expected a JSON list of strings, got '\\[\"ok\", '"),
        ('{"a": 1}', "got JSON dict"),
        ('"just a string"', "got JSON str"),
        ('["a", 3]', "item 1 is int"),
        ('[["nested"]]', "item 0 is list"),
        ("12", "got JSON int"),
    ],
)
def test_bad_cell_names_column_row_and_excerpt(cell, match):
    df = pd.DataFrame(
        {"prompt": ['["p"]', '["p"]'], "response_a": ['["a"]', cell], "response_b": ['["b"]'] * 2},
        index=["r0", "r17"],
    )
    with pytest.raises(ArenaFormatError, match="response_a at row 'r17'") as info:
        ArenaTextFormatter().fit_transform(df)
    assert info.value.column == "response_a" and info.value.row == "r17"
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match=match):
        ArenaTextFormatter().fit_transform(df)


def test_error_names_the_original_column_when_swapped():
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a"]'], "response_b": ["oops"]})
    with pytest.raises(ArenaFormatError, match="response_b at row 0"):
        ArenaTextFormatter(swap=True).fit_transform(df)


def test_lone_surrogate_is_replaced():
    out = parse_turns('["x\\ud83dy", "\\ud83d\\ude00"]')
    assert out == ["x\ufffdy", "\U0001f600"]
    out[0].encode("utf-8")  # encodable


def test_bare_string_is_rejected_like_sklearn():
    with pytest.raises(ValueError, match="string object received"):
        ArenaTextFormatter().fit("prompt")
    with pytest.raises(ValueError, match="string object received"):
        ArenaTextFormatter().transform("prompt")


def test_non_dataframe_is_rejected():
    with pytest.raises(ValueError, match="DataFrame .* expected, got list"):
        ArenaTextFormatter().transform([["a", "b", "c"]])


def test_mapping_input_and_feature_names():
    out = ArenaTextFormatter(template="{prompt}").fit_transform(
        {"prompt": ['["p"]'], "response_a": ['["a"]'], "response_b": ['["b"]']}
    )
    assert list(out) == ["p"]
    assert list(ArenaTextFormatter().get_feature_names_out()) == ["text"]


def test_set_output_pandas_gives_one_text_column(arena):
    fmt = ArenaTextFormatter().set_output(transform="pandas")
    out = fmt.fit_transform(arena.head(3))
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["text"] and list(out.index) == list(arena.head(3).index)
