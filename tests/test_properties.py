"""Property tests (hypothesis) over ArenaTextFormatter and the pipeline's input checks.

Hostile cells (not JSON, JSON of the wrong type, nested lists, nulls, empty
lists, numbers, NaN, lone UTF-16 surrogates, 1M-character strings, unequal
turn counts) under every formatter mode (``turns``, ``swap``, templates,
``max_tokens`` budgets with and without a tokenizer) and every reading rule
(``cell_format``). Every outcome is either one ``str`` per row or an
:class:`~gemma_pref.exceptions.ArenaFormatError` (a ``ValueError``) naming the column
and the row of the first bad cell (or, under ``"auto"``, a frame that mixes
JSON lists and plain strings); never another exception. Every produced text
is embedded with the real tiny Gemma-2, and no vector holds a NaN or an
infinity.

The examples are derandomized (the same ones on every run and in CI) and the
example database is off, so a run never depends on a previous one.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gemma_pref import ArenaTextFormatter, GemmaEmbedder
from gemma_pref.exceptions import ArenaFormatError, MissingCellsWarning
from gemma_pref.text.formatting import ARENA_COLUMNS, CHARS_PER_TOKEN, parse_turns

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the autouse memory-cache reset
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_SPECIAL = [
    "\ud83d",
    "\udc00",
    "\ud83d\ude00",
    "😀",
    "\x00",
    "\n",
    "\r\n",
    "\u2028",
    '"',
    "\\",
    "\\u0000",
    "{prompt}",
    "{}",
    "<eos>",
    "<start_of_turn>",
    "[Turn 1] ",
    "null",
    " ",
    "é",
    "字",
    "\t",
    "x" * 300,
]
_TEXT = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=12),
        st.sampled_from(_SPECIAL),
    ),
    max_size=6,
).map("".join)
_TURN = st.one_of(st.none(), _TEXT)
_TURNS = st.lists(_TURN, max_size=4)
_VALID_CELL = st.builds(json.dumps, _TURNS, ensure_ascii=st.booleans())
_WRONG_JSON = st.one_of(
    # JSON, but not a list
    st.builds(
        json.dumps,
        st.one_of(
            st.dictionaries(st.text(max_size=3), _TURN, max_size=2),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            _TEXT,
            st.booleans(),
            st.none(),
        ),
    ),
    # a list holding something other than strings and nulls
    st.builds(
        json.dumps,
        st.lists(
            st.one_of(
                _TURN,
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.lists(_TURN, max_size=2),
                st.booleans(),
                st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)
_NOT_JSON = st.one_of(
    _TEXT,
    st.sampled_from(
        [
            "",
            "[",
            '["a",',
            "['a']",
            "[a]",
            "NaN",
            "[NaN]",
            "[Infinity]",
            "None",
            '["a"] trailing',
            "[1e999]",
            '["\\ud83d"]',
            '["\\x"]',
            "[" * 5000,
            "[" * 100_000 + "]" * 100_000,
        ]
    ),
)
_RAW_OBJECT = st.one_of(
    st.sampled_from(
        [
            None,
            float("nan"),
            np.nan,
            pd.NA,
            pd.NaT,
            0,
            1.5,
            b'["x"]',
            True,
            np.float32("nan"),
            np.int64(3),
        ]
    ),
    _TURNS,  # an already decoded list
    _TURNS.map(tuple),
    st.lists(_TEXT, max_size=3).map(lambda t: np.array(t, dtype=object)),
)


@st.composite
def _cells(draw, clean=False):
    kind = draw(st.integers(0, 9))
    if kind < 6 or (clean and kind < 8):
        return draw(_VALID_CELL)
    if clean:  # missing values and decoded lists only
        return draw(st.one_of(st.sampled_from([None, float("nan")]), _TURNS))
    return draw([_WRONG_JSON, _NOT_JSON, _RAW_OBJECT, _RAW_OBJECT][kind - 6])


_LABEL = st.one_of(st.integers(-3, 3), _TEXT.map(lambda s: s[:8]), st.none(), st.just(float("nan")))


@st.composite
def _frames(draw):
    n = draw(st.integers(1, 4))
    labels = draw(st.lists(_LABEL, min_size=n, max_size=n))
    clean = draw(st.booleans())  # half the frames hold only valid cells
    columns = {c: [draw(_cells(clean)) for _ in range(n)] for c in ARENA_COLUMNS}
    if draw(st.booleans()):
        columns["id"] = list(range(n))
    order = draw(st.permutations(list(columns)))
    infer = draw(st.booleans())  # pandas' own dtype inference, or object columns
    try:
        frame = pd.DataFrame(columns, dtype=None if infer else object)
    except UnicodeEncodeError:
        # with pyarrow installed, pandas' inferred str dtype cannot hold lone
        # surrogates: such a frame only exists with object columns
        frame = pd.DataFrame(columns, dtype=object)
    frame.index = pd.Index(labels, dtype=object)
    return frame[order]


_TEMPLATES = [None, "{prompt}|{response_a}|{response_b}", "{response_b}::{prompt}"]


@st.composite
def _formatter_params(draw):
    return {
        "turns": draw(st.sampled_from(["last", "all"])),
        "swap": draw(st.booleans()),
        "template": draw(st.sampled_from(_TEMPLATES)),
        "max_tokens": draw(st.sampled_from([None, None, 1, 8, 24, 40, 64])),
        "tokenizer": draw(st.sampled_from([None, "tiny"])),
        "cell_format": draw(st.sampled_from(["auto", "auto", "json", "text"])),
    }


# -------------------------------------------------------------------- oracle
class _Bad(Exception):
    """The cell breaks the frame's rule: not a JSON list of strings or nulls
    under "json", not a string under "text"."""


class _Mixed(Exception):
    """Under "auto": some cells are JSON lists of turns, some plain strings."""


_JSON_START = re.compile(r'[ \t\n\r]*\[[ \t\n\r]*(?:"|null\b|\][ \t\n\r]*\Z)')


def _missing(cell):
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return True
    return isinstance(cell, (float, np.floating)) and math.isnan(cell)


def _oracle_rule(frame, cell_format):
    """The specification of the frame's rule, written independently of the library:
    "auto" is "json" when every non-missing cell is a list or a string that starts
    like a JSON list ('["', '[null' or '[]'), "text" when none is."""
    if cell_format != "auto":
        return cell_format
    kinds = set()
    for name in ARENA_COLUMNS:
        for cell in frame[name].tolist():
            if isinstance(cell, str):
                kinds.add("json" if _JSON_START.match(cell) else "text")
            elif isinstance(cell, (list, tuple, np.ndarray)):
                kinds.add("json")
    if len(kinds) == 2:
        raise _Mixed
    return "json" if kinds == {"json"} else "text"


def _oracle_turns(cell, rule):
    """The specification of a cell under a rule."""
    if _missing(cell):
        return []
    if rule == "text":
        if not isinstance(cell, str):
            raise _Bad
        return [_SURROGATE.sub("\ufffd", cell)]
    if isinstance(cell, str):
        try:
            value = json.loads(cell)
        except (ValueError, RecursionError):
            raise _Bad from None
    elif isinstance(cell, (list, tuple, np.ndarray)):
        value = list(cell)
    else:
        raise _Bad
    if not isinstance(value, list):
        raise _Bad
    turns = []
    for item in value:
        if item is None:
            turns.append("")
        elif isinstance(item, str):
            turns.append(_SURROGATE.sub("\ufffd", item))
        else:
            raise _Bad
    return turns


def _same_label(a, b):
    return a is b or a == b or (a != a and b != b)


def _expected(frame, swap, rule):
    """Parsed turns per row (fields in template order, after swap), or the
    (column, row) of the first bad cell, column by column."""
    parsed = {}
    for name in ARENA_COLUMNS:
        cells = frame[name].tolist()
        parsed[name] = []
        for i, label in enumerate(frame.index):
            try:
                parsed[name].append(_oracle_turns(cells[i], rule))
            except _Bad:
                return None, (name, label)
    names = ("prompt", "response_b", "response_a") if swap else ARENA_COLUMNS
    return [[parsed[n][i] for n in names] for i in range(len(frame))], None


class _Counter:
    """Tokens as the formatter's budget counts them."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text):
        if self.tokenizer is None:
            return -(-len(text) // CHARS_PER_TOKEN)
        return len(self.tokenizer(text)["input_ids"])


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def embedder(tiny_gemma):
    emb = GemmaEmbedder(
        tiny_gemma,
        max_length=32,
        batch_size=8,
        dtype="float32",
        memory_cache=False,
        devices="cpu",
    )
    emb.fit(None)
    return emb


@pytest.fixture(scope="module")
def tokenizer(tiny_gemma):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gemma)


def _frame(prompt, a, b, index=None):
    return pd.DataFrame(
        {"prompt": [prompt], "response_a": [a], "response_b": [b]},
        index=index,
        dtype=object,
    )


_MILLION = "x" * 1_000_000
_MILLION_WORDS = "word " * 200_000


# ------------------------------------------------------------------ property
@settings(PROPERTY, max_examples=350)
@given(frame=_frames(), params=_formatter_params())
@example(  # 1M characters, cut to a token budget with the real tokenizer
    frame=_frame(json.dumps([_MILLION]), json.dumps(["short", _MILLION_WORDS]), "[null]"),
    params={
        "turns": "all",
        "swap": False,
        "template": None,
        "max_tokens": 64,
        "tokenizer": "tiny",
    },
)
@example(  # 1M characters, no budget: the embedder truncates
    frame=_frame(json.dumps([_MILLION_WORDS]), "[]", json.dumps([_MILLION])),
    params={
        "turns": "last",
        "swap": True,
        "template": None,
        "max_tokens": None,
        "tokenizer": None,
    },
)
@example(  # lone surrogates, escaped and raw, and unequal turn counts
    frame=_frame('["\\ud83d", "b"]', '["\ud83d\ude00 x"]', '["a", "b", "c"]'),
    params={
        "turns": "all",
        "swap": False,
        "template": None,
        "max_tokens": 24,
        "tokenizer": "tiny",
    },
)
@example(  # NaN cell, empty list, [null]
    frame=_frame(float("nan"), "[]", "[null]"),
    params={
        "turns": "all",
        "swap": False,
        "template": None,
        "max_tokens": None,
        "tokenizer": None,
    },
)
@example(  # a nested list names the column and the row
    frame=_frame('["ok"]', '[["nested"]]', '["ok"]', index=["row-7"]),
    params={
        "turns": "last",
        "swap": False,
        "template": None,
        "max_tokens": None,
        "tokenizer": None,
    },
)
@example(  # numbers, in and out of JSON
    frame=_frame("[1, 2]", 3.5, '["ok"]', index=[41]),
    params={
        "turns": "last",
        "swap": True,
        "template": None,
        "max_tokens": 8,
        "tokenizer": None,
    },
)
def test_formatter_gives_texts_or_names_the_bad_cell(
    frame, params, embedder, tokenizer, tiny_gemma
):
    params = {"cell_format": "auto", **params}  # the explicit examples leave it out
    if params["tokenizer"] == "tiny":
        params["tokenizer"] = tokenizer
    fmt = ArenaTextFormatter(**params)
    try:
        rule = _oracle_rule(frame, params["cell_format"])
        rows, error = _expected(frame, params["swap"], rule)
    except _Mixed:
        rule, rows, error = None, None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingCellsWarning)
            texts = fmt.fit_transform(frame)
    except ArenaFormatError as exc:
        assert isinstance(exc, ValueError)
        assert exc.column in ARENA_COLUMNS
        if rule is None:
            assert str(exc).startswith("ambiguous text cells: "), exc
            event("ArenaFormatError: mixed cells")
            return
        assert error is not None, f"valid frame refused: {exc}"
        expected = "expected a string" if rule == "text" else "expected a JSON list"
        assert str(exc).startswith(f"{exc.column} at row {exc.row!r}: {expected}")
        assert exc.column == error[0] and _same_label(exc.row, error[1]), (exc, error)
        event("ArenaFormatError")
        return
    event(f"texts (rule={rule}, budget={params['max_tokens'] is not None})")
    assert rule is not None, "a frame of mixed cells was read"
    assert error is None, f"bad cell {error} accepted"
    assert isinstance(texts, np.ndarray) and texts.shape == (len(frame),)
    for text in texts:
        assert isinstance(text, str)
        text.encode("utf-8")  # strict: no lone surrogate reaches the tokenizer
    _check_texts(texts, rows, fmt, params)
    X = embedder.transform(texts)
    assert X.shape == (len(frame), 64) and X.dtype == np.float32
    assert np.isfinite(X).all()


def _check_texts(texts, rows, fmt, params):
    """Texts against the parsed turns (in template-field order, after swap)."""
    fill = fmt._filler()
    markers = ("\x01P", "\x01A", "\x01B")
    used = [m in fill(*markers) for m in markers]  # fields the template shows
    count = _Counter(params["tokenizer"])
    for text, (p, a, b) in zip(texts, rows):
        labelled = params["turns"] == "all" and max(len(p), len(a), len(b)) > 1
        if params["max_tokens"] is None:
            if params["turns"] == "last":
                last = [t[-1] if t else "" for t in (p, a, b)]
                assert text == fill(*last)
            else:
                for column, shown in zip((p, a, b), used):
                    for i, turn in enumerate(column, start=1):
                        piece = f"[Turn {i}] {turn}" if labelled else turn
                        assert not shown or piece in text, (i, turn)
            continue
        # within budget, unless the template (and the turn labels kept for
        # the last turn) alone overflow it
        labels = [f"[Turn {len(t)}] " if labelled and t else "" for t in (p, a, b)]
        floor = count(fill(*labels))
        assert count(text) <= max(params["max_tokens"], floor)


@settings(PROPERTY, max_examples=600)
@given(
    cell=_cells(),
    column=st.sampled_from(ARENA_COLUMNS),
    row=_LABEL,
    rule=st.sampled_from(["json", "text"]),
)
def test_parse_turns_gives_strings_or_names_the_cell(cell, column, row, rule):
    try:
        expected = _oracle_turns(cell, rule)
    except _Bad:
        expected = None
    try:
        turns = parse_turns(cell, rule, column=column, row=row)
    except ArenaFormatError as exc:
        assert exc.column == column and _same_label(exc.row, row)
        what = "expected a string" if rule == "text" else "expected a JSON list"
        assert str(exc).startswith(f"{column} at row {row!r}: {what}")
        assert expected is None
        return
    assert expected is not None
    assert all(isinstance(t, str) and not _SURROGATE.search(t) for t in turns)
    assert turns == expected


_JUNK = st.one_of(
    st.none(),
    st.floats(),
    st.integers(),
    st.binary(max_size=4),
    st.lists(_TEXT, max_size=1),
    st.just(pd.NA),
)


@settings(PROPERTY, max_examples=150)
@given(
    values=st.lists(st.one_of(_TEXT, _TEXT, _JUNK), max_size=5),
    container=st.sampled_from(["list", "tuple", "array", "series", "frame"]),
)
@example(values=["\ud83d lone", "", "\x00", _MILLION], container="series")
def test_embedder_input_checks(values, container, embedder):
    labels = [f"r{i}" for i in range(len(values))]
    column = "text"
    if container == "list":
        X = list(values)
        labels = list(range(len(values)))
    elif container == "tuple":
        X = tuple(values)
        labels = list(range(len(values)))
    elif container == "array":
        X = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            X[i] = value
        labels = list(range(len(values)))
    elif container == "series":
        X = pd.Series(values, index=labels, dtype=object, name="answer")
        column = "answer"
    else:
        X = pd.DataFrame({"answer": pd.Series(values, index=labels, dtype=object)})
        column = "answer"
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if container in ("list", "tuple") and values and all(isinstance(v, list) for v in values):
        # a list of equal-length lists is a table of texts, as in scikit-learn
        widths = {len(v) for v in values}
        if len(widths) == 1 and widths != {0}:
            bad = [i for i, v in enumerate(values) if not all(isinstance(t, str) for t in v)]
            column = "text" if widths == {1} else "text0"
    try:
        out = embedder.transform(X)
    except ValueError as exc:
        assert bad, f"valid texts refused: {exc}"
        first = labels[bad[0]]
        assert str(exc).startswith(f"{column} at row {first!r}: expected str, got")
        return
    assert not bad
    width = (
        len(values[0])
        if values and column.startswith("text") and isinstance(values[0], list)
        else 1
    )
    assert out.shape == (len(values), 64 * width) and out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("X", ["one string", 5, None])
def test_embedder_rejects_non_collections(X, embedder):
    with pytest.raises(ValueError, match="Iterable over raw text documents expected"):
        embedder.transform(X)


# ------------------------------------------- found by the properties above
def test_nullable_missing_cell_is_an_empty_turn():
    import io

    csv = 'id,prompt,response_a,response_b\n1,"[""hi""]",,"[""b""]"\n'
    frame = pd.read_csv(io.StringIO(csv), dtype_backend="numpy_nullable")
    assert frame["response_a"].tolist()[0] is pd.NA
    fmt = ArenaTextFormatter(template="{prompt}|{response_a}|{response_b}")
    with pytest.warns(MissingCellsWarning, match=r"response_a: 1; row 0 \(id 1\)"):
        assert fmt.fit_transform(frame)[0] == "hi||b"  # as a NaN cell gives


def test_duplicate_arena_column_is_named():
    frame = pd.DataFrame(
        [['["a"]', '["b"]', '["c"]', '["d"]']],
        columns=["prompt", "prompt", "response_a", "response_b"],
    )
    with pytest.raises(ValueError, match="'prompt'"):
        ArenaTextFormatter().fit(frame)
