from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gemma_pref import ArenaTextFormatter
from gemma_pref.exceptions import ArenaFormatError, MissingCellsWarning
from gemma_pref.text import SEED_TEMPLATE
from gemma_pref.text.formatting import parse_turns


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
            "<start_of_turn>User prompt: "
            + p
            + "\n\nModel A :\n"
            + a
            + "\n\n----\n\nModel B:\n"
            + b
            + "<end_of_turn><eos>"
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
        {
            "prompt": ['["q"]', '["q"]'],
            "response_a": [np.nan, "[]"],
            "response_b": ['["b"]', '["b"]'],
        }
    )
    fmt = ArenaTextFormatter(template="{prompt}|{response_a}|{response_b}")
    with pytest.warns(
        MissingCellsWarning, match=r"1 text cell is missing \(response_a: 1; row 0\)"
    ):
        out = fmt.fit_transform(df)
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
    cell = json.dumps(['He said "a","b" and left', "x\\y"])
    assert parse_turns(cell) == ['He said "a","b" and left', "x\\y"]


def test_swap_exchanges_the_answers(arena):
    out = ArenaTextFormatter(swap=True, template="{response_a}#{response_b}").fit_transform(
        arena.head(5)
    )
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
        ('["ok", ', "expected a JSON list of strings \\(cell_format='json'\\), got '\\[\"ok\", '"),
        ('["a", 3]', "item 1 is int"),
        ('[null, {"a": 1}]', "item 1 is dict"),
        ('["a"] and more', "Extra data"),
        ("[null, 1]", "item 1 is int"),
        (12, "expected a JSON list of strings \\(cell_format='json'\\), got int 12"),
        ({"a": 1}, "got dict"),
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
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a"]'], "response_b": ['["oops']})
    with pytest.raises(ArenaFormatError, match="response_b at row 0"):
        ArenaTextFormatter(swap=True).fit_transform(df)


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital.",
        '{"a": 1}',
        '"just a string"',
        "12",
        "[1, 2, 3] is a list",
        "[citation needed]",
        "[] While answering this question",
        "[]]",
        '[["nested"]]',
        "",
        "  leading spaces and\nlines ",
    ],
)
def test_plain_string_cells_are_one_turn_verbatim(text):
    """A frame of plain strings reads every cell as one turn, verbatim; under
    the JSON rule the same strings are refused, never rewritten."""
    assert parse_turns(text, "text") == [text]
    with pytest.raises(ArenaFormatError, match="expected a JSON list of strings"):
        parse_turns(text)
    plain = pd.DataFrame({"prompt": ["Q?"], "response_a": [text], "response_b": ["B"]})
    listed = pd.DataFrame(
        {"prompt": ['["Q?"]'], "response_a": [json.dumps([text])], "response_b": ['["B"]']}
    )
    for layout in ("joint", "pair"):
        fmt = ArenaTextFormatter(layout=layout)
        np.testing.assert_array_equal(fmt.fit_transform(plain), fmt.fit_transform(listed))


@pytest.mark.parametrize(
    ("cell", "turns"),
    [
        ('["a"]', ["a"]),
        (' [ "a", null ] ', ["a", ""]),
        ("[null]", [""]),
        ("[]", []),
        (" [] \n", []),
    ],
)
def test_json_list_looking_cells_parse_as_lists(cell, turns):
    assert parse_turns(cell) == turns


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


# ------------------------------------------------------------- token budget
SEP = "\x1f"  # a separator no arena text contains
PARTS = f"{{prompt}}{SEP}{{response_a}}{SEP}{{response_b}}"


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_gemma):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gemma, local_files_only=True)


def test_a_budget_nothing_exceeds_changes_nothing(arena, tiny_gemma):
    plain = ArenaTextFormatter().fit_transform(arena)
    roomy = ArenaTextFormatter(max_tokens=100_000, tokenizer=tiny_gemma).fit_transform(arena)
    assert [t.encode("utf-8") for t in roomy] == [t.encode("utf-8") for t in plain]
    every = ArenaTextFormatter(turns="all").fit_transform(arena)
    roomy_all = ArenaTextFormatter(
        turns="all", max_tokens=100_000, tokenizer=tiny_gemma
    ).fit_transform(arena)
    assert list(roomy_all) == list(every)


@pytest.mark.parametrize("turns", ["last", "all"])
def test_budget_fits_every_text_and_keeps_both_answers(arena, tiny_gemma, tiny_tokenizer, turns):
    budget = 256
    fmt = ArenaTextFormatter(turns=turns, max_tokens=budget, tokenizer=tiny_gemma)
    texts = fmt.fit_transform(arena)
    lengths = [len(ids) for ids in tiny_tokenizer(list(texts))["input_ids"]]
    assert max(lengths) <= budget
    plain = ArenaTextFormatter(turns=turns).fit_transform(arena)
    assert sum(a != b for a, b in zip(texts, plain)) > 500  # most rows are over
    # same texts as the seed template wherever the row already fits
    seed_len = [len(ids) for ids in tiny_tokenizer(list(plain))["input_ids"]]
    for t, p, n in zip(texts, plain, seed_len):
        if n <= budget:
            assert t == p

    cut = ArenaTextFormatter(
        turns=turns, template=PARTS, max_tokens=budget, tokenizer=tiny_gemma
    ).fit_transform(arena)
    full = ArenaTextFormatter(turns=turns, template=PARTS).fit_transform(arena)
    for c, f in zip(cut, full):
        kept, source = c.split(SEP), f.split(SEP)
        for k, s in zip(kept, source):
            if turns == "last":
                assert s.startswith(k)  # each part keeps its beginning
            if s.strip():
                assert k.strip(), "an answer or prompt was cut to nothing"


def test_short_parts_stay_whole_long_parts_share(tiny_gemma, tiny_tokenizer):
    long_a = " ".join(f"alpha{i}" for i in range(400))
    long_b = " ".join(f"beta{i}" for i in range(400))
    df = pd.DataFrame(
        {
            "prompt": [json.dumps(["Which is better?"])] * 2,
            "response_a": [json.dumps([long_a]), json.dumps(["Short answer."])],
            "response_b": [json.dumps([long_b])] * 2,
        }
    )
    fmt = ArenaTextFormatter(template=PARTS, max_tokens=200, tokenizer=tiny_tokenizer)
    both_long, one_short = (t.split(SEP) for t in fmt.fit_transform(df))
    assert both_long[0] == one_short[0] == "Which is better?"
    assert one_short[1] == "Short answer."
    n = [len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in both_long]
    assert abs(n[1] - n[2]) <= 2  # equal shares of what the prompt left
    m = [len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in one_short]
    assert m[2] > n[2] + 50  # B gets what the short A did not use
    for parts in (both_long, one_short):
        assert len(tiny_tokenizer(SEP.join(parts))["input_ids"]) <= 200


def test_multi_turn_budget_keeps_recent_turns_and_their_numbers(tiny_gemma, tiny_tokenizer):
    turns = 12
    df = pd.DataFrame(
        {
            "prompt": [json.dumps([f"question {i} " * 5 for i in range(turns)])],
            "response_a": [json.dumps([f"answer a{i} " * 30 for i in range(turns)])],
            "response_b": [json.dumps([f"answer b{i} " * 30 for i in range(turns)])],
        }
    )
    text = ArenaTextFormatter(turns="all", max_tokens=160, tokenizer=tiny_gemma).fit_transform(df)[
        0
    ]
    assert len(tiny_tokenizer(text)["input_ids"]) <= 160
    assert f"[Turn {turns}] " in text and "[Turn 1] " not in text
    b_part = text.split("Model B:\n")[1]
    assert f"[Turn {turns}] answer b{turns - 1}" in b_part


def test_budget_without_tokenizer_counts_four_chars_a_token(arena):
    texts = ArenaTextFormatter(max_tokens=300).fit_transform(arena)
    assert max(len(t) for t in texts) <= 1200
    assert all(
        "Model B:\n<end" not in t
        for t, (_, row) in zip(texts, arena.iterrows())
        if (json.loads(row["response_b"])[-1] or "").strip()
    )


def test_budget_smaller_than_the_template_is_best_effort():
    df = pd.DataFrame({"prompt": ['["p"]'], "response_a": ['["a a a"]'], "response_b": ['["b"]']})
    assert ArenaTextFormatter(max_tokens=2).fit_transform(df)[0] == SEED_TEMPLATE.format(
        prompt="", response_a="", response_b=""
    )


def test_tokenizer_path_is_loaded_lazily_and_not_pickled(arena, tiny_gemma, tiny_tokenizer):
    import pickle

    fmt = ArenaTextFormatter(max_tokens=128, tokenizer=tiny_gemma)
    assert not hasattr(fmt, "_lazy_tokenizer")
    out = fmt.fit_transform(arena.head(20))
    assert hasattr(fmt, "_lazy_tokenizer")
    blob = pickle.dumps(fmt)
    assert len(blob) < 2_000
    loaded = pickle.loads(blob)
    assert not hasattr(loaded, "_lazy_tokenizer")
    assert list(loaded.transform(arena.head(20))) == list(out)
    # a loaded tokenizer object works the same
    same = ArenaTextFormatter(max_tokens=128, tokenizer=tiny_tokenizer).fit_transform(
        arena.head(20)
    )
    assert list(same) == list(out)


def test_clones_share_one_loaded_tokenizer_until_its_files_change(arena, tiny_gemma, tmp_path):
    import os
    import shutil

    from sklearn.base import clone

    for name in os.listdir(tiny_gemma):
        if "token" in name:
            shutil.copy(os.path.join(tiny_gemma, name), tmp_path / name)
    fmt = ArenaTextFormatter(max_tokens=64, tokenizer=str(tmp_path))
    out = fmt.fit_transform(arena.head(10))
    other = clone(fmt).fit(arena.head(10))  # each CV fold fits a clone
    assert other._lazy_tokenizer[1] is fmt._lazy_tokenizer[1]
    stamp = os.stat(tmp_path / "tokenizer.json").st_mtime_ns + 10**9
    os.utime(tmp_path / "tokenizer.json", ns=(stamp, stamp))
    edited = clone(fmt).fit(arena.head(10))
    assert edited._lazy_tokenizer[1] is not fmt._lazy_tokenizer[1]
    assert list(edited.transform(arena.head(10))) == list(out)


@pytest.mark.parametrize(("layout", "turns"), [("pair", "last"), ("joint", "all")])
def test_rows_cut_again_come_from_the_memo_unchanged(arena, tiny_gemma, layout, turns):
    from transformers import AutoTokenizer

    from gemma_pref.text.budget import BudgetMemo

    rows = arena.iloc[:60]
    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    fmt = ArenaTextFormatter(layout=layout, turns=turns, max_tokens=48, tokenizer=tok)
    first = fmt.fit_transform(rows)
    memo = BudgetMemo.of(tok, (layout, None, 48))
    assert memo is not None and len(memo._entries) > 0  # rows over the budget were kept
    again = fmt.transform(rows.iloc[::-1])[::-1]  # every row from the memo
    # a tokenizer of its own starts with an empty memo: the same texts, cut anew
    fresh = ArenaTextFormatter(
        layout=layout,
        turns=turns,
        max_tokens=48,
        tokenizer=AutoTokenizer.from_pretrained(tiny_gemma),
    ).fit_transform(rows)
    assert first.tolist() == again.tolist() == fresh.tolist()


def test_bad_budget_parameters_are_rejected_in_fit(arena, tmp_path):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'max_tokens' parameter"):
        ArenaTextFormatter(max_tokens=0).fit(arena.head(2))
    with pytest.raises(ValueError, match="'tokenizer' parameter of ArenaTextFormatter is"):
        ArenaTextFormatter(max_tokens=64, tokenizer=str(tmp_path / "nowhere")).fit(arena.head(2))
    with pytest.raises(ValueError, match="must be a Hugging Face fast tokenizer"):
        ArenaTextFormatter(max_tokens=64, tokenizer=str.split).fit(arena.head(2))
    # without a budget the tokenizer is not needed, so not loaded
    ArenaTextFormatter(tokenizer=str(tmp_path / "nowhere")).fit(arena.head(2))


def test_truncation_report_seed_rule_vs_budget(arena, tiny_gemma):
    from gemma_pref.text import truncation_report

    seed = truncation_report(arena, max_length=256, tokenizer=tiny_gemma)
    budget = truncation_report(
        arena,
        max_length=256,
        tokenizer=tiny_gemma,
        formatter=ArenaTextFormatter(max_tokens=256, tokenizer=tiny_gemma),
    )
    assert list(seed.index) == list(arena.index)
    has_b = seed["response_b_chars"] > 0
    b_lost_seed = int((has_b & (seed["response_b_kept_chars"] == 0)).sum())
    b_lost_budget = int((has_b & (budget["response_b_kept_chars"] == 0)).sum())
    a_lost_seed = int(((seed["response_a_chars"] > 0) & (seed["response_a_kept_chars"] == 0)).sum())
    # right truncation drops B entirely in most rows of the sample, A far less
    assert b_lost_seed > 0.5 * has_b.sum() and b_lost_seed > 4 * a_lost_seed
    assert b_lost_budget == 0
    assert (budget["n_tokens"] <= 256).all() and (seed["n_tokens"] > 256).sum() > 500
    # the budget shares the room: B keeps as much as A on average
    frac = budget[["response_a_kept_chars", "response_b_kept_chars"]].to_numpy() / np.maximum(
        budget[["response_a_chars", "response_b_chars"]].to_numpy(), 1
    )
    assert abs(frac[:, 0].mean() - frac[:, 1].mean()) < 0.05
    with pytest.raises(ValueError, match="string template"):
        truncation_report(
            arena, max_length=8, formatter=ArenaTextFormatter(template=lambda p, a, b: p)
        )
