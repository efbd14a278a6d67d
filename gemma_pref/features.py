# SPDX-License-Identifier: Apache-2.0
"""Structure features of arena rows: lengths, lists, code, markdown, per answer.

Cheap signals such as "the longer, better formatted answer wins" carry much of
what is learnable from a few thousand arena rows. :class:`ArenaStructureFeatures`
turns raw arena rows into a float matrix of such counts for each answer, their
differences and ratios, ready to join the embeddings in a ``FeatureUnion``.
This module never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions

from ._base import ArenaRowsTransformerMixin, VersionedPickleMixin
from .schema import ARENA_COLUMNS, check_arena_frame, parse_turns

__all__ = ["RESPONSE_FEATURES", "ArenaStructureFeatures"]

_M = re.MULTILINE
_WORD = re.compile(r"\S+")
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
    "words": "whitespace-separated words",
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


def _response_features(turns: list[str]) -> list[float]:
    """Features of one answer: counts summed over its turns."""
    values = [float(sum(_COUNTERS[name](t) for t in turns)) for name in _COUNTERS]
    values.append(float(not any(t.strip() for t in turns)))
    return values


class ArenaStructureFeatures(
    ArenaRowsTransformerMixin, VersionedPickleMixin, TransformerMixin, BaseEstimator
):
    """Structure features of both answers of arena rows, and how they differ.

    Stateless transformer from the raw arena DataFrame (columns ``prompt``,
    ``response_a``, ``response_b``, each cell a JSON list of turns) to a
    float64 matrix. For each answer it counts the :data:`RESPONSE_FEATURES`
    (characters, words, lines, list items, code blocks, headers, bold spans,
    links, table rows, refusal phrases, emptiness), then adds for each of them
    the difference A - B and the ratio A / (A + B). It joins the embeddings
    with ``FeatureUnion`` or ``ColumnTransformer``.

    Parameters
    ----------
    turns : {"all", "last"}, default="all"
        ``"all"`` sums the counts over every turn of the conversation;
        ``"last"`` counts the last turn only (as ``ArenaTextFormatter``'s
        default keeps it).

    See Also
    --------
    ArenaTextFormatter : The text of the same rows, for the embedder.
    SwapABClassifier : A/B swap augmentation; these features swap with it.

    Notes
    -----
    Columns, in order (see :meth:`get_feature_names_out`): ``n_turns`` (turns
    of the prompt), ``prompt_chars``, ``prompt_words``; then
    ``response_a_<f>`` and ``response_b_<f>`` for each feature ``f``; then
    ``diff_<f>`` (A - B) and ``ratio_<f>``, A / (A + B) in [0, 1], which is 0.5
    when both are 0, so never NaN or infinite. Swapping the answers exchanges
    the ``response_a_*`` and ``response_b_*`` columns, negates ``diff_*`` and
    maps ``ratio_*`` to ``1 - ratio_*``.

    Cells are parsed like :class:`~gemma_pref.ArenaTextFormatter` does
    (:func:`~gemma_pref.formatting.parse_turns`): a JSON ``null`` turn counts
    as an empty string, a missing cell (``NaN``) as no turns, and a bad cell
    raises :class:`~gemma_pref.exceptions.ArenaFormatError` naming the column
    and the row. The counts are plain regular expressions over markdown-like
    text; ``refusals`` only knows a few English phrases.

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref.features import ArenaStructureFeatures
    >>> df = pd.DataFrame({"prompt": ['["List two fruits"]'],
    ...                    "response_a": ['["- apple\\\\n- pear"]'],
    ...                    "response_b": ['["Sorry, I cannot help."]']})
    >>> feats = ArenaStructureFeatures().set_output(transform="pandas")
    >>> out = feats.fit_transform(df)
    >>> out[["response_a_bullet_items", "response_b_refusals", "diff_words"]]
       response_a_bullet_items  response_b_refusals  diff_words
    0                      2.0                  1.0         0.0
    >>> out.shape
    (1, 55)
    """

    _parameter_constraints: dict = {
        "turns": [StrOptions({"all", "last"})],
    }

    def __init__(self, *, turns: str = "all") -> None:
        self.turns = turns

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
        features : ndarray of shape (n_rows, 3 + 4 * len(RESPONSE_FEATURES)), dtype=float64
            One row per input row, in input order; columns as
            :meth:`get_feature_names_out` names them.
        """
        self._validate_params()
        X = check_arena_frame(X, type(self).__name__)
        columns = [X[c].tolist() for c in ARENA_COLUMNS]
        n_resp = len(RESPONSE_FEATURES)
        out = np.empty((len(X), self._n_features_out), dtype=np.float64)
        for i, row in enumerate(X.index):
            prompt, resp_a, resp_b = (
                parse_turns(cells[i], column=name, row=row)
                for cells, name in zip(columns, ARENA_COLUMNS)
            )
            n_turns = len(prompt)
            if self.turns == "last":
                prompt, resp_a, resp_b = (t[-1:] for t in (prompt, resp_a, resp_b))
            a = _response_features(resp_a)
            b = _response_features(resp_b)
            out[i, 0] = n_turns
            out[i, 1] = sum(len(t) for t in prompt)
            out[i, 2] = sum(1 for t in prompt for _ in _WORD.finditer(t))
            out[i, 3 : 3 + n_resp] = a
            out[i, 3 + n_resp : 3 + 2 * n_resp] = b
        feats_a = out[:, 3 : 3 + n_resp]
        feats_b = out[:, 3 + n_resp : 3 + 2 * n_resp]
        total = feats_a + feats_b
        out[:, 3 + 2 * n_resp : 3 + 3 * n_resp] = feats_a - feats_b
        out[:, 3 + 3 * n_resp :] = np.divide(
            feats_a, total, out=np.full_like(feats_a, 0.5), where=total != 0
        )
        return out

    @property
    def _n_features_out(self) -> int:
        """Number of output columns (not fitted state: a constant of the class)."""
        return 3 + 4 * len(RESPONSE_FEATURES)

    def _output_names(self) -> list[str]:
        # n_turns, prompt_chars, prompt_words, then response_a_<f>,
        # response_b_<f>, diff_<f> and ratio_<f> for each of RESPONSE_FEATURES
        names = ["n_turns", "prompt_chars", "prompt_words"]
        for prefix in ("response_a", "response_b", "diff", "ratio"):
            names += [f"{prefix}_{f}" for f in RESPONSE_FEATURES]
        return names
