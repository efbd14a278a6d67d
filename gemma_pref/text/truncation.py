# SPDX-License-Identifier: Apache-2.0
"""How much of each part of the formatted rows survives a token limit: :func:`truncation_report`.

This module never imports torch.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from ..data.schema import ARENA_COLUMNS
from ._templates import CHAT_TEMPLATES, PAIR_FIELDS, PAIR_TEMPLATE, SEED_TEMPLATE, joined
from .budget import TokenCounter, load_tokenizer_param
from .formatting import ArenaTextFormatter

__all__ = ["truncation_report"]


def _field_spans(template: str, values: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """Character span of the first occurrence of each field in the filled text."""
    formatter = string.Formatter()
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    for literal, name, spec, conversion in formatter.parse(template):
        pos += len(literal)
        if name is None:
            continue
        value = formatter.format_field(
            formatter.convert_field(values[name], conversion), spec or ""
        )
        spans.setdefault(name, (pos, pos + len(value)))
        pos += len(value)
    return spans


def truncation_report(
    X: Any,
    *,
    max_length: int,
    tokenizer: Any = None,
    formatter: ArenaTextFormatter | None = None,
) -> pd.DataFrame:
    """Measure how much of each part of the formatted rows survives truncation.

    Formats ``X`` with ``formatter``, tokenizes each text as an embedder does
    (special tokens included), keeps its first ``max_length`` tokens (right
    truncation, as :class:`~gemma_pref.GemmaEmbedder` does) and reports, for
    the prompt and each answer, how many characters the formatter's joined
    turns had and how many are left in the kept tokens.

    Parameters
    ----------
    X : pandas.DataFrame
        Arena rows with columns ``prompt``, ``response_a``, ``response_b``.
    max_length : int
        Tokens the embedder keeps per text.
    tokenizer : str, os.PathLike, tokenizer or None, default=None
        As the ``tokenizer`` parameter of :class:`ArenaTextFormatter`: a local
        checkpoint directory, a loaded fast tokenizer, or ``None`` for 4
        characters per token.
    formatter : ArenaTextFormatter or None, default=None
        The formatter to measure, of either layout, with a string template
        (spans are located through it). ``None``: ``ArenaTextFormatter()``,
        the reference notebook's rule (last turn, no budget).

    Returns
    -------
    report : pandas.DataFrame
        Indexed like ``X``. The parts ``c`` are ``prompt``, ``response_a``
        and ``response_b`` (after ``swap``); ``c_chars`` counts the
        characters of a part before any budget. ``response_a_lost`` and
        ``response_b_lost``: the answer has characters and none of them is
        in the kept tokens (cut by the formatter's budget or by the
        truncation).

        ``layout="joint"`` (one text per row): ``n_tokens``, tokens of the
        text before truncation; ``c_kept_chars``, characters of the part
        left after the budget and the truncation at ``max_length``.

        ``layout="pair"`` (answer A's text, answer B's): ``n_tokens_a`` and
        ``n_tokens_b``, tokens of each text before truncation;
        ``prompt_kept_chars_a`` and ``prompt_kept_chars_b``, characters of
        the prompt left in each text; ``response_a_kept_chars`` and
        ``response_b_kept_chars``, characters of each answer left in its
        text; ``identical_texts``, the two texts differ but their kept tokens
        are the same (the model sees one text twice, see
        :class:`~gemma_pref.exceptions.TruncationWarning`).

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref import ArenaTextFormatter
    >>> from gemma_pref.text import truncation_report
    >>> df = pd.DataFrame({"prompt": ['["Why?"]'],
    ...                    "response_a": ['["' + "a" * 80 + '"]'],
    ...                    "response_b": ['["' + "b" * 80 + '"]']})
    >>> tmpl = "{prompt}|{response_a}|{response_b}"
    >>> seed = truncation_report(df, max_length=24,
    ...                          formatter=ArenaTextFormatter(template=tmpl))
    >>> seed[["response_a_kept_chars", "response_b_kept_chars"]].iloc[0].tolist()
    [80, 10]
    >>> budget = ArenaTextFormatter(template=tmpl, max_tokens=24)
    >>> fair = truncation_report(df, max_length=24, formatter=budget)
    >>> fair[["response_a_kept_chars", "response_b_kept_chars"]].iloc[0].tolist()
    [44, 44]

    With two texts per row, a prompt longer than ``max_length`` leaves both
    texts the same prompt prefix, unless the budget gives each part its share:

    >>> long = df.assign(prompt='["' + "p" * 120 + '"]')
    >>> cols = ["response_a_lost", "response_b_lost", "identical_texts"]
    >>> pairs = ArenaTextFormatter(layout="pair", template="{prompt}|{response}")
    >>> truncation_report(long, max_length=24, formatter=pairs)[cols].iloc[0].tolist()
    [True, True, True]
    >>> shared = ArenaTextFormatter(layout="pair", template="{prompt}|{response}",
    ...                             max_tokens=24)
    >>> truncation_report(long, max_length=24, formatter=shared)[cols].iloc[0].tolist()
    [False, False, False]
    """
    if formatter is None:
        formatter = ArenaTextFormatter()
    if formatter.layout not in ("joint", "pair"):
        raise ValueError(
            "truncation_report measures formatters with layout='joint' or 'pair'; "
            f"got layout={formatter.layout!r}."
        )
    if callable(formatter.template) or formatter._chat() is not None:
        raise ValueError(
            "truncation_report needs a formatter with a string template (or None, "
            "the layout's own template) to locate the parts; got a "
            f"{'callable' if callable(formatter.template) else 'chat'} template."
        )
    if not isinstance(max_length, Integral) or max_length < 1:
        raise ValueError(f"max_length must be a positive int; got {max_length!r}.")
    counter = TokenCounter(load_tokenizer_param(tokenizer))
    if formatter.layout == "pair":
        return _pair_report(X, int(max_length), counter, formatter)
    template = formatter.template
    if template is None or template in CHAT_TEMPLATES:  # "auto" without a chat: Gemma's
        template = SEED_TEMPLATE
    rows = formatter._format_parts(X)
    records = []
    for _, source, kept, text in rows:
        n_tokens, cutoff = counter.kept_chars(text, max_length)
        spans = _field_spans(template, dict(zip(ARENA_COLUMNS, kept)))
        record: dict[str, int] = {"n_tokens": n_tokens}
        for name, original in zip(ARENA_COLUMNS, source):
            start, end = spans.get(name, (0, 0))
            record[f"{name}_chars"] = len(original)
            record[f"{name}_kept_chars"] = max(0, min(end, cutoff) - start)
        records.append(record)
    columns = ["n_tokens"] + [
        f"{name}_{kind}" for name in ARENA_COLUMNS for kind in ("chars", "kept_chars")
    ]
    report = pd.DataFrame(records, index=[row for row, *_ in rows], columns=columns, dtype=np.int64)
    for name in ARENA_COLUMNS[1:]:
        report[f"{name}_lost"] = (report[f"{name}_chars"] > 0) & (report[f"{name}_kept_chars"] == 0)
    return report


def _kept_tokens(counter: TokenCounter, text: str, max_length: int) -> tuple[int, int, Any]:
    """Tokens of ``text`` (special tokens included), the characters its first
    ``max_length`` tokens hold, and what the model sees of it (the kept token
    ids, or the kept characters when tokens are counted as characters)."""
    if counter.tokenizer is None:
        n_tokens, cutoff = counter.kept_chars(text, max_length)
        return n_tokens, cutoff, text[:cutoff]
    enc = counter.tokenizer(text, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if len(ids) <= max_length:
        return len(ids), len(text), ids
    cutoff = max((int(e) for _, e in enc["offset_mapping"][:max_length]), default=0)
    return len(ids), cutoff, ids[:max_length]


#: The columns of :func:`truncation_report` for ``layout="pair"``.
_PAIR_COUNTS = (
    "n_tokens_a",
    "n_tokens_b",
    "prompt_chars",
    "prompt_kept_chars_a",
    "prompt_kept_chars_b",
    "response_a_chars",
    "response_a_kept_chars",
    "response_b_chars",
    "response_b_kept_chars",
)
_PAIR_FLAGS = ("response_a_lost", "response_b_lost", "identical_texts")


def _pair_report(
    X: Any, max_length: int, counter: TokenCounter, formatter: ArenaTextFormatter
) -> pd.DataFrame:
    """:func:`truncation_report` of a ``layout="pair"`` formatter with a
    string template: each row's two texts rendered as the formatter does."""
    template = formatter.template
    fmt = PAIR_TEMPLATE if template is None or template in CHAT_TEMPLATES else str(template)
    render = formatter._renderer(joined(lambda p, r, _: fmt.format(prompt=p, response=r)))
    records, index = [], []
    for row, (prompt, answer_a, answer_b) in formatter._parsed_rows(X):
        labelled = max(len(prompt), len(answer_a), len(answer_b)) > 1
        record: dict[str, Any] = {}
        seen = []
        for side, answer in (("a", answer_a), ("b", answer_b)):
            source, kept, text = render([prompt, answer, []], labelled, row)
            n_tokens, cutoff, tokens = _kept_tokens(counter, text, max_length)
            spans = _field_spans(fmt, dict(zip(PAIR_FIELDS, kept)))
            record[f"n_tokens_{side}"] = n_tokens
            record["prompt_chars"] = len(source[0])
            start, end = spans.get("prompt", (0, 0))
            record[f"prompt_kept_chars_{side}"] = max(0, min(end, cutoff) - start)
            start, end = spans.get("response", (0, 0))
            record[f"response_{side}_chars"] = len(source[1])
            record[f"response_{side}_kept_chars"] = max(0, min(end, cutoff) - start)
            record[f"response_{side}_lost"] = len(source[1]) > 0 and min(end, cutoff) <= start
            seen.append((text, tokens))
        (text_a, kept_a), (text_b, kept_b) = seen
        record["identical_texts"] = text_a != text_b and kept_a == kept_b
        records.append(record)
        index.append(row)
    report = pd.DataFrame(records, index=index, columns=[*_PAIR_COUNTS, *_PAIR_FLAGS])
    dtypes: dict[str, Any] = {**dict.fromkeys(_PAIR_COUNTS, np.int64)}
    dtypes.update(dict.fromkeys(_PAIR_FLAGS, bool))
    return report.astype(dtypes)
