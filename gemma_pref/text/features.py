# SPDX-License-Identifier: Apache-2.0
"""Structure features of arena rows: lengths, lists, code, markdown, per answer.

Cheap signals such as "the longer, better formatted answer wins" carry much of
what is learnable from a few thousand arena rows. :class:`ArenaStructureFeatures`
turns raw arena rows into a float matrix of log-scaled counts for each answer,
their differences (log ratios) and absolute differences, the prompt's length
and turns, and whether the two answers are identical: features that swap
exactly when the answers swap (:meth:`ArenaStructureFeatures.swap_map`).
This module never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions

from .._base import ArenaRowsTransformerMixin, VersionedPickleMixin
from ..data.schema import ARENA_COLUMNS, CELL_FORMATS, check_arena_frame, read_turns

__all__ = ["PROMPT_FEATURES", "RESPONSE_FEATURES", "ArenaStructureFeatures"]

_M = re.MULTILINE
# a word: one CJK ideograph or kana (Chinese and Japanese are written without
# spaces), or a run of other characters between spaces and CJK punctuation
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_CJK_PUNCT = "\u3000-\u303f\uff01-\uff0f\uff1a-\uff1f"
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}{_CJK_PUNCT}]+")
_LINE = re.compile(r"^[ \t]*\S", _M)
_BULLET = re.compile(r"^[ \t]*[-*+\u2022][ \t]+\S", _M)
_NUMBERED = re.compile(r"^[ \t]*\d{1,3}[.)][ \t]+\S", _M)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", _M)
_INLINE_CODE = re.compile(r"(?<!`)`[^`\n]+`(?!`)")
_HEADER = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", _M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_LINK = re.compile(r"https?://\S+")
_TABLE_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$", _M)
_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry|I apologi[sz]e|I (?:cannot|can't|can not|won't|"
    r"am unable to|'m unable to|am not able to)|as an AI|as a language model)\b",
    re.IGNORECASE,
)


def _count(pattern: re.Pattern[str]) -> Callable[[str], int]:
    return lambda text: sum(1 for _ in pattern.finditer(text))


#: Per-answer features, in output order, with what each counts.
RESPONSE_FEATURES: dict[str, str] = {
    "chars": "characters",
    "words": "words: runs of non-space characters, each CJK ideograph or kana one word",
    "lines": "non-blank lines",
    "bullet_items": "lines starting with -, *, + or a bullet",
    "numbered_items": "lines starting with 1. or 1)",
    "code_blocks": "fenced code blocks (``` or ~~~ pairs; an unclosed one counts)",
    "inline_code": "`inline code` spans",
    "headers": "markdown headers (# to ######)",
    "bold": "**bold** or __bold__ spans",
    "links": "http(s) URLs",
    "table_rows": "lines of a markdown table (| a | b |)",
    "refusals": "refusal or apology phrases (English: I'm sorry, I cannot, as an AI)",
    "empty": "1 when the answer has no visible character, else 0",
}

_COUNTERS: dict[str, Callable[[str], int]] = {
    "chars": len,
    "words": _count(_WORD),
    "lines": _count(_LINE),
    "bullet_items": _count(_BULLET),
    "numbered_items": _count(_NUMBERED),
    "code_blocks": lambda text: (sum(1 for _ in _FENCE.finditer(text)) + 1) // 2,
    "inline_code": _count(_INLINE_CODE),
    "headers": _count(_HEADER),
    "bold": _count(_BOLD),
    "links": _count(_LINK),
    "table_rows": _count(_TABLE_ROW),
    "refusals": _count(_REFUSAL),
}


def _response_counts(turns: list[str]) -> list[float]:
    """Raw counts of one answer, summed over its turns, and its emptiness."""
    values = [float(sum(_COUNTERS[name](t) for t in turns)) for name in _COUNTERS]
    values.append(float(not any(t.strip() for t in turns)))
    return values


#: Columns that do not depend on the order of the answers.
PROMPT_FEATURES: dict[str, str] = {
    "prompt_turns": "turns of the prompt",
    "prompt_chars": "log(1 + characters of the prompt)",
    "prompt_words": "log(1 + words of the prompt)",
    "identical": "1 when both answers are the same text, else 0",
}

#: The column groups of each answer feature ``f``, and how swapping A and B maps them.
_GROUPS: tuple[tuple[str, str], ...] = (
    ("response_a", "log(1 + count) of answer A"),
    ("response_b", "log(1 + count) of answer B"),
    ("diff", "response_a - response_b: the log ratio (1 + A) / (1 + B)"),
    ("absdiff", "|diff|: how different the answers are, whichever is larger"),
    ("gap", "sign(A - B) * log(1 + |A - B|): the difference of the counts themselves"),
)


class ArenaStructureFeatures(
    ArenaRowsTransformerMixin, VersionedPickleMixin, TransformerMixin, BaseEstimator
):
    """Log-scaled structure features of both answers of arena rows, and how they differ.

    Stateless transformer from the raw arena DataFrame (columns ``prompt``,
    ``response_a``, ``response_b``: JSON lists of turns, or plain strings of
    one turn each) to a float64 matrix.
    For each answer it counts the :data:`RESPONSE_FEATURES` (characters,
    words, lines, list items, code blocks, headers, bold spans, links, table
    rows, refusal phrases, emptiness) and takes ``log(1 + count)``; then, for
    each of them, the difference A - B of the logs (the log ratio, which
    swapping the answers negates) and its absolute value (how different the
    answers are, which swapping keeps: the evidence for a tie). The prompt's
    turns and log length, an identical-answers flag and the signed log of the
    difference of the counts themselves (``gap``) complete it. Counts of
    arena answers span four orders of magnitude; on the log scale a linear
    model weighs "twice as long" alike for short and long answers.

    Parameters
    ----------
    turns : {"all", "last"}, default="all"
        ``"all"`` sums the counts over every turn of the conversation;
        ``"last"`` counts the last turn only (as ``ArenaTextFormatter``'s
        default keeps it).
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells are read, one rule for the whole frame, as
        :class:`~gemma_pref.ArenaTextFormatter`'s parameter of that name.

    See Also
    --------
    PreferenceBlendClassifier : Classifies these features symmetrically, alone
        or blended with the answers' embeddings.
    ArenaTextFormatter : The text of the same rows, for the embedder.
    SwapABClassifier : A/B swap augmentation; these features swap with it.

    Notes
    -----
    Columns, in order (see :meth:`get_feature_names_out`): the
    :data:`PROMPT_FEATURES` (``prompt_turns``, ``prompt_chars``,
    ``prompt_words``, ``identical``); then ``response_a_<f>``,
    ``response_b_<f>``, ``diff_<f>``, ``absdiff_<f>`` and ``gap_<f>`` for each
    feature ``f``. Swapping the answers exchanges the ``response_a_*`` and
    ``response_b_*`` columns, negates ``diff_*`` and ``gap_*`` and keeps the others
    (:meth:`swap_map` gives that map). Every value is finite.

    Cells are read like :class:`~gemma_pref.ArenaTextFormatter` reads them
    (one rule per frame, :func:`~gemma_pref.data.schema.read_turns`): a JSON
    ``null`` turn counts as an empty string, a missing cell (``NaN``) as no
    turns, and a bad cell raises
    :class:`~gemma_pref.exceptions.ArenaFormatError` naming the column and
    the row. The counts are plain regular expressions over markdown-like
    text in any script (each CJK ideograph or kana counts as a word);
    ``refusals`` only knows a few English phrases.

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref.text.features import ArenaStructureFeatures
    >>> df = pd.DataFrame({"prompt": ['["List two fruits"]'],
    ...                    "response_a": ['["- apple\\\\n- pear"]'],
    ...                    "response_b": ['["Sorry, I cannot help."]']})
    >>> feats = ArenaStructureFeatures().set_output(transform="pandas")
    >>> out = feats.fit_transform(df)
    >>> out[["response_a_bullet_items", "response_b_refusals", "diff_words"]].round(3)
       response_a_bullet_items  response_b_refusals  diff_words
    0                    1.099                0.693         0.0
    >>> out.shape
    (1, 69)
    """

    _parameter_constraints: dict = {
        "turns": [StrOptions({"all", "last"})],
        "cell_format": [StrOptions(set(CELL_FORMATS))],
    }

    def __init__(self, *, turns: str = "all", cell_format: str = "auto") -> None:
        self.turns = turns
        self.cell_format = cell_format

    def _check_rows(self, X: Any) -> None:
        self._validate_params()
        check_arena_frame(X, type(self).__name__)

    def transform(self, X: Any) -> np.ndarray:
        """Compute the structure features of each row.

        Parameters
        ----------
        X : pandas.DataFrame or mapping
            Arena rows; only ``prompt``, ``response_a`` and ``response_b`` are read.

        Returns
        -------
        features : ndarray of shape (n_rows, 4 + 5 * len(RESPONSE_FEATURES)), dtype=float64
            One row per input row, in input order; columns as
            :meth:`get_feature_names_out` names them.
        """
        self._validate_params()
        X, turns = read_turns(X, type(self).__name__, self.cell_format)
        n_prompt, n_resp = len(PROMPT_FEATURES), len(RESPONSE_FEATURES)
        prompt_part = np.empty((len(X), n_prompt), dtype=np.float64)
        counts = np.empty((2, len(X), n_resp), dtype=np.float64)
        for i in range(len(X)):
            prompt, resp_a, resp_b = (turns[name][i] for name in ARENA_COLUMNS)
            prompt_part[i, 0] = len(prompt)
            prompt_part[i, 3] = float(resp_a == resp_b)
            if self.turns == "last":
                prompt, resp_a, resp_b = (t[-1:] for t in (prompt, resp_a, resp_b))
            prompt_part[i, 1] = sum(len(t) for t in prompt)
            prompt_part[i, 2] = sum(_COUNTERS["words"](t) for t in prompt)
            counts[0, i] = _response_counts(resp_a)
            counts[1, i] = _response_counts(resp_b)
        prompt_part[:, 1:3] = np.log1p(prompt_part[:, 1:3])
        log_a, log_b = np.log1p(counts[0]), np.log1p(counts[1])
        diff, raw = log_a - log_b, counts[0] - counts[1]
        gap = np.sign(raw) * np.log1p(np.abs(raw))
        return np.hstack([prompt_part, log_a, log_b, diff, np.abs(diff), gap])

    def swap_map(self) -> tuple[np.ndarray, np.ndarray]:
        """How swapping answers A and B maps the output columns.

        Returns
        -------
        index : ndarray of shape (n_features,), dtype=int64
        sign : ndarray of shape (n_features,), dtype=float64
            ``transform(swap_ab(X))`` equals ``transform(X)[:, index] * sign``:
            ``response_a_*`` and ``response_b_*`` exchange, ``diff_*`` and
            ``gap_*`` change sign, the rest stay.

        Examples
        --------
        >>> index, sign = ArenaStructureFeatures().swap_map()
        >>> names = ArenaStructureFeatures().get_feature_names_out()
        >>> str(names[index[4]]), str(names[4]), float(sign[4 + 2 * 13])
        ('response_b_chars', 'response_a_chars', -1.0)
        """
        n_prompt, n_resp = len(PROMPT_FEATURES), len(RESPONSE_FEATURES)
        index = np.arange(self._n_features_out)
        sign = np.ones(self._n_features_out)
        a = np.arange(n_prompt, n_prompt + n_resp)
        index[a], index[a + n_resp] = a + n_resp, a
        sign[n_prompt + 2 * n_resp : n_prompt + 3 * n_resp] = -1.0  # diff
        sign[n_prompt + 4 * n_resp :] = -1.0  # gap
        return index, sign

    @property
    def _n_features_out(self) -> int:
        """Number of output columns (not fitted state: a constant of the class)."""
        return len(PROMPT_FEATURES) + len(_GROUPS) * len(RESPONSE_FEATURES)

    def _output_names(self) -> list[str]:
        names = list(PROMPT_FEATURES)
        for prefix, _ in _GROUPS:
            names += [f"{prefix}_{f}" for f in RESPONSE_FEATURES]
        return names
