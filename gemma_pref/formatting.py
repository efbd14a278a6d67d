# SPDX-License-Identifier: Apache-2.0
"""Turn raw Chatbot Arena rows into one text per row.

The Kaggle "LMSYS - Chatbot Arena" files store ``prompt``, ``response_a`` and
``response_b`` as JSON-encoded lists of strings, one item per conversation turn.
:class:`ArenaTextFormatter` parses them with a real JSON parser and fills a chat
template. This module never imports torch.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions

from .exceptions import ArenaFormatError

__all__ = [
    "ARENA_COLUMNS",
    "SEED_TEMPLATE",
    "ArenaTextFormatter",
    "parse_turns",
]

#: The three text columns of an arena row, in template order.
ARENA_COLUMNS: tuple[str, str, str] = ("prompt", "response_a", "response_b")

#: The template of the reference notebook: a Gemma chat turn holding the prompt
#: and both answers. ``str.format`` fields: ``prompt``, ``response_a``,
#: ``response_b``.
SEED_TEMPLATE = (
    "<start_of_turn>User prompt: {prompt}\n\nModel A :\n{response_a}"
    "\n\n----\n\nModel B:\n{response_b}<end_of_turn><eos>"
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_EXCERPT_CHARS = 60


def _excerpt(value: Any) -> str:
    text = repr(value)
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 3] + "..."
    return text


def _clean(text: str) -> str:
    # JSON allows lone UTF-16 surrogates ("\ud83d"); they cannot be encoded as
    # UTF-8 and would crash a tokenizer later, far from the row that caused it.
    if _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text)
    return text


def parse_turns(cell: Any, *, column: str = "cell", row: Any = None) -> list[str]:
    """Parse one arena cell into a list of turn strings.

    Parameters
    ----------
    cell : str, list, tuple, None or float
        A JSON-encoded list such as ``'["hi", null]'``, an already decoded
        list or tuple, or a missing value (``None`` / ``NaN``).
    column : str, default="cell"
        Column name used in error messages.
    row : object, default=None
        Row label used in error messages.

    Returns
    -------
    turns : list of str
        One string per turn. A JSON ``null`` item becomes ``""``; a missing
        cell becomes ``[]``. Lone UTF-16 surrogates are replaced by U+FFFD.

    Raises
    ------
    ArenaFormatError
        (a ``ValueError``) when the cell is not a JSON list of strings or nulls.
        The message names the column, the row and an excerpt of the cell.

    Examples
    --------
    >>> parse_turns('["Hello", null]')
    ['Hello', '']
    >>> parse_turns('["a\\\\"quoted\\\\" word"]')
    ['a"quoted" word']
    """
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, str):
        try:
            value = json.loads(cell)
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", None) or type(exc).__name__
            raise ArenaFormatError(
                f"{column} at row {row!r}: expected a JSON list of strings, "
                f"got {_excerpt(cell)} ({reason})",
                column=column,
                row=row,
            ) from None
    elif isinstance(cell, (list, tuple, np.ndarray)):
        value = list(cell)
    else:
        raise ArenaFormatError(
            f"{column} at row {row!r}: expected a JSON list of strings, "
            f"got {type(cell).__name__} {_excerpt(cell)}",
            column=column,
            row=row,
        )
    if not isinstance(value, list):
        raise ArenaFormatError(
            f"{column} at row {row!r}: expected a JSON list of strings, "
            f"got JSON {type(value).__name__} {_excerpt(cell)}",
            column=column,
            row=row,
        )
    turns = []
    for i, item in enumerate(value):
        if item is None:
            turns.append("")
        elif isinstance(item, str):
            turns.append(_clean(item))
        else:
            raise ArenaFormatError(
                f"{column} at row {row!r}: expected a JSON list of strings, "
                f"item {i} is {type(item).__name__} {_excerpt(item)}",
                column=column,
                row=row,
            )
    return turns


def _template_fields(template: str) -> set[str]:
    fields = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(
                "The 'template' parameter of ArenaTextFormatter must use named "
                f"fields {{prompt}}, {{response_a}}, {{response_b}}; got a "
                f"positional field in {_excerpt(template)}."
            )
        fields.add(name)
    unknown = fields - set(ARENA_COLUMNS)
    if unknown:
        raise ValueError(
            "The 'template' parameter of ArenaTextFormatter may only use the "
            f"fields {{prompt}}, {{response_a}}, {{response_b}}; got "
            f"{sorted(unknown)} in {_excerpt(template)}."
        )
    return fields


def _join_turns(turns: Sequence[str], mode: str, labelled: bool) -> str:
    if not turns:
        return ""
    if mode == "last":
        return turns[-1]
    if not labelled:
        return turns[0]
    return "\n\n".join(f"[Turn {i}] {t}" for i, t in enumerate(turns, start=1))


class ArenaTextFormatter(TransformerMixin, BaseEstimator):
    """Format Chatbot Arena rows into one text per row.

    Stateless transformer: ``fit`` only validates the parameters, and
    ``transform`` maps a DataFrame with the columns ``prompt``, ``response_a``
    and ``response_b`` (each cell a JSON-encoded list of strings, one per
    conversation turn) to a 1-D object array of ``str`` in input order.

    Parameters
    ----------
    turns : {"last", "all"}, default="last"
        ``"last"`` keeps the last turn of each column, as the reference
        notebook does. ``"all"`` keeps every turn; when a row has more than one
        turn, each turn is prefixed with ``[Turn i]`` and turns are separated by
        a blank line. Rows with a single turn format identically in both modes.
    swap : bool, default=False
        Exchange ``response_a`` and ``response_b`` (used for A/B augmentation).
    template : str or callable, default=None
        ``None`` uses :data:`SEED_TEMPLATE`, the reference notebook's Gemma
        chat template. A string is filled with ``str.format`` using the fields
        ``{prompt}``, ``{response_a}`` and ``{response_b}``. A callable is
        called as ``template(prompt, response_a, response_b)`` and must return
        a ``str``.

    Notes
    -----
    Cells are parsed with :func:`json.loads`, so escaped quotes, commas and
    newlines inside answers survive (the reference notebook splits on
    ``'","'`` and keeps JSON escapes verbatim). A JSON ``null`` item and a
    missing cell (``NaN``) become the empty string. A cell that is not a JSON
    list of strings raises :class:`~gemma_pref.exceptions.ArenaFormatError`, a
    ``ValueError`` naming the column, the row label and an excerpt.

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref import ArenaTextFormatter
    >>> df = pd.DataFrame({"prompt": ['["Hi"]'], "response_a": ['["Hello!"]'],
    ...                    "response_b": ['[null]']})
    >>> print(ArenaTextFormatter().fit_transform(df)[0])
    <start_of_turn>User prompt: Hi
    <BLANKLINE>
    Model A :
    Hello!
    <BLANKLINE>
    ----
    <BLANKLINE>
    Model B:
    <end_of_turn><eos>
    >>> ArenaTextFormatter(template="{response_a} vs {response_b}",
    ...                    swap=True).fit_transform(df)
    array([' vs Hello!'], dtype=object)
    """

    _parameter_constraints: dict = {
        "turns": [StrOptions({"last", "all"})],
        "swap": ["boolean"],
        "template": [str, callable, None],
    }

    def __init__(
        self,
        *,
        turns: str = "last",
        swap: bool = False,
        template: str | Callable[[str, str, str], str] | None = None,
    ) -> None:
        self.turns = turns
        self.swap = swap
        self.template = template

    def _check_params(self) -> None:
        self._validate_params()
        if isinstance(self.template, str):
            _template_fields(self.template)

    def fit(self, X: Any, y: Any = None) -> ArenaTextFormatter:
        """Validate the parameters and the columns of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows with columns ``prompt``, ``response_a``, ``response_b``.
        y : None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        self : ArenaTextFormatter
            The formatter itself.
        """
        self._check_params()
        self._columns(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Format each row of ``X`` into one text.

        Parameters
        ----------
        X : pandas.DataFrame or mapping
            Arena rows with columns ``prompt``, ``response_a``, ``response_b``.
            Other columns are ignored.

        Returns
        -------
        texts : ndarray of shape (n_rows,), dtype=object
            One ``str`` per row, in input order.
        """
        self._check_params()
        prompts, resp_a, resp_b, labels = self._columns(X)
        if self.swap:
            resp_a, resp_b = resp_b, resp_a
            names = ("prompt", "response_b", "response_a")
        else:
            names = ARENA_COLUMNS
        fill = self._filler()
        out = np.empty(len(labels), dtype=object)
        for i, row in enumerate(labels):
            parts = [
                parse_turns(prompts[i], column=names[0], row=row),
                parse_turns(resp_a[i], column=names[1], row=row),
                parse_turns(resp_b[i], column=names[2], row=row),
            ]
            labelled = max(len(p) for p in parts) > 1
            p, a, b = (_join_turns(t, self.turns, labelled) for t in parts)
            text = fill(p, a, b)
            if not isinstance(text, str):
                raise TypeError(
                    "The 'template' callable of ArenaTextFormatter must return a "
                    f"str; got {type(text).__name__} at row {row!r}."
                )
            out[i] = text
        return out

    def _filler(self) -> Callable[[str, str, str], str]:
        template = self.template
        if callable(template):
            return template
        fmt = SEED_TEMPLATE if template is None else template
        return lambda p, a, b: fmt.format(prompt=p, response_a=a, response_b=b)

    @staticmethod
    def _columns(X: Any) -> tuple[list, list, list, list]:
        if isinstance(X, str):
            raise ValueError(
                "A pandas DataFrame with columns 'prompt', 'response_a' and "
                "'response_b' expected, string object received."
            )
        if isinstance(X, Mapping) and not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(dict(X))
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                "A pandas DataFrame with columns 'prompt', 'response_a' and "
                f"'response_b' expected, got {type(X).__name__}."
            )
        missing = [c for c in ARENA_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(
                f"Missing column(s) {', '.join(repr(c) for c in missing)}: "
                "ArenaTextFormatter needs 'prompt', 'response_a' and "
                f"'response_b'; got columns {list(map(str, X.columns))}."
            )
        return (
            X["prompt"].tolist(),
            X["response_a"].tolist(),
            X["response_b"].tolist(),
            X.index.tolist(),
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Name of the single output column.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``["text"]``.
        """
        return np.asarray(["text"], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []
        return tags
