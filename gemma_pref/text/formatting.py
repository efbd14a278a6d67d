# SPDX-License-Identifier: Apache-2.0
"""Turn raw Chatbot Arena rows into one text per row.

The Kaggle "LMSYS - Chatbot Arena" files store ``prompt``, ``response_a`` and
``response_b`` as JSON-encoded lists of strings, one item per conversation turn;
the WSDM Cup 2025 files store them as plain strings, one turn each.
:class:`ArenaTextFormatter` reads every cell of a frame by one rule
(``cell_format``: a real JSON parser for the lists, see
:func:`~gemma_pref.data.schema.parse_turns`) and fills a chat template. This module
never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from numbers import Integral
from typing import Any, cast

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

from .. import _compat
from .._base import ArenaRowsTransformerMixin, VersionedPickleMixin
from ..data._cells import parse_turns as parse_turns
from ..data.schema import ARENA_COLUMNS as ARENA_COLUMNS
from ..data.schema import CELL_FORMATS, check_arena_frame, read_turns
from ._templates import CHAT_JOINT_BODY as CHAT_JOINT_BODY
from ._templates import (
    CHAT_TEMPLATES,
    PAIR_FIELDS,
    PAIR_TEMPLATE,
    SEED_TEMPLATE,
    PiecesFill,
    is_gemma_chat_template,
    joined,
    template_fields,
)
from ._templates import ChatRenderer as ChatRenderer
from .budget import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from .budget import MIN_TOKENS_PER_TURN as MIN_TOKENS_PER_TURN
from .budget import (
    TURN_LABEL,
    BudgetMemo,
    TokenCounter,
    fit_to_budget,
    join_pieces,
    load_tokenizer_param,
    turn_pieces,
)

# The names imported ``as`` themselves were gemma-pref 0.1's ``gemma_pref.formatting``
# names (a pickle may name them): they stay importable from here.

__all__ = ["ArenaTextFormatter"]


class ArenaTextFormatter(
    ArenaRowsTransformerMixin, VersionedPickleMixin, TransformerMixin, BaseEstimator
):
    """Format Chatbot Arena rows into texts for an embedder.

    Stateless transformer: ``fit`` only validates the parameters, and
    ``transform`` maps a DataFrame with the columns ``prompt``, ``response_a``
    and ``response_b`` (every cell a JSON-encoded list of strings, one per
    conversation turn, or every cell a plain string, one turn: see
    ``cell_format``) to texts of ``str`` in input order: one per row
    (``layout="joint"``, a 1-D object array) or one per answer
    (``layout="pair"``, an object array of shape ``(n_rows, 2)``).

    Parameters
    ----------
    layout : {"joint", "pair"}, default="joint"
        ``"joint"``: one text holding the prompt and both answers, the reference
        notebook's way (:data:`SEED_TEMPLATE`). ``"pair"``: two texts per row,
        the prompt with answer A and the prompt with answer B, each in Gemma's
        chat format (:data:`PAIR_TEMPLATE`); their embeddings can then be
        compared (see :class:`~gemma_pref.PairDifferenceClassifier`).
    turns : {"last", "all"}, default="last"
        ``"last"`` keeps the last turn of each column, as the reference
        notebook does. ``"all"`` keeps every turn; when a row has more than one
        turn, each turn is prefixed with ``[Turn i]`` and turns are separated by
        a blank line. Rows with a single turn format identically in both modes.
    swap : bool, default=False
        Exchange ``response_a`` and ``response_b``, at fit and at transform
        alike: a fixed view of the rows. For A/B augmentation (swapped copies
        at fit, averaged swapped predictions) use
        :class:`~gemma_pref.models.augmentation.SwapABClassifier`, which swaps the
        raw rows (and so every branch of the pipeline) instead.
    template : str or callable, default=None
        ``None`` uses :data:`SEED_TEMPLATE`, the reference notebook's Gemma
        chat template (:data:`PAIR_TEMPLATE` with ``layout="pair"``). A string
        is filled with ``str.format`` using the fields ``{prompt}``,
        ``{response_a}`` and ``{response_b}`` (``{prompt}`` and ``{response}``
        with ``layout="pair"``). A callable is called as
        ``template(prompt, response_a, response_b)`` (``template(prompt,
        response)``) and must return a ``str``. ``"chat"``: the
        ``tokenizer``'s own chat template (``apply_chat_template``): with
        ``layout="pair"`` the conversation as its turns (each prompt turn a
        user turn, each answer turn an assistant turn; with ``turns="all"``
        every earlier turn too, unlabelled), with ``layout="joint"`` one user
        turn holding :data:`CHAT_JOINT_BODY`; a Qwen, Llama or Mistral model
        then reads the chat format it was trained on. ``"auto"``: ``"chat"``
        when ``tokenizer`` has a chat template that is not Gemma's, else the
        Gemma templates above (byte-identical texts); the recipes use it for
        any checkpoint given to them.
    max_tokens : int or None, default=None
        Token budget of each formatted text, special tokens included: set it
        to the embedder's ``max_length``. A text over budget has its prompt,
        ``response_a`` and ``response_b`` cut (keeping the start of each) to
        their shares, so that both answers survive the embedder's right
        truncation: parts shorter than an equal share keep everything and the
        others split what is left (water-filling); with ``turns="all"`` each
        column's share is water-filled over its turns in the same way. Texts
        within budget are unchanged. ``None``: no budget (the reference
        notebook's behaviour).
    tokenizer : str, os.PathLike, tokenizer or None, default=None
        How ``max_tokens`` counts tokens, and whose chat template
        ``template="chat"`` or ``"auto"`` uses. A local checkpoint directory, or
        a Hugging Face Hub name (from the local cache, or downloaded once), is
        loaded lazily with ``AutoTokenizer.from_pretrained`` and is dropped
        when pickling;
        ``"gemma-pref:default"`` (:data:`~gemma_pref.backend.default_model.DEFAULT_MODEL`)
        is the default model's tokenizer; a loaded Hugging Face fast
        tokenizer is used as is. ``None`` counts
        :data:`CHARS_PER_TOKEN` (4) characters per token: free, but only
        approximate (code and non-Latin scripts take more tokens per
        character, so such texts may still overrun). Ignored when
        ``max_tokens`` is ``None``.
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells are read, one rule for every cell of the frame:
        ``"json"``, each cell is a JSON list of turns (the Kaggle LMSYS
        files); ``"text"``, each cell is one turn, verbatim (the WSDM Cup
        files: an answer that looks like a JSON list stays as written).
        ``"auto"``: the rule :func:`~gemma_pref.read_preferences` marked the
        frame with, else ``"json"`` when every non-missing cell is a JSON
        list and ``"text"`` when none is; a frame with both kinds raises
        :class:`~gemma_pref.exceptions.ArenaFormatError` naming rows (see
        :func:`~gemma_pref.data.schema.resolve_cell_format`).

    See Also
    --------
    truncation_report : How much of each part survives a token limit.
    GemmaEmbedder : Embeds the texts.

    Notes
    -----
    JSON cells are parsed with :func:`json.loads`, so escaped quotes, commas
    and newlines inside answers survive (the reference notebook splits on
    ``'","'`` and keeps JSON escapes verbatim). A JSON ``null`` item and a
    missing cell (``NaN``) become the empty string; missing cells are
    reported once (:class:`~gemma_pref.exceptions.MissingCellsWarning`). A
    cell that breaks the frame's rule (not a JSON list of strings under
    ``"json"``, not a string under ``"text"``) raises
    :class:`~gemma_pref.exceptions.ArenaFormatError`, a ``ValueError``
    naming the column, the row label and an excerpt.

    Without a budget, the embedder's right truncation at ``max_length`` cuts
    the end of the text: with the reference template that is ``response_b``,
    often entirely (:func:`truncation_report` measures it). Token counts of
    parts do not add up exactly, so under a budget the shares are tightened by
    the measured excess until the whole text fits. With ``turns="all"``, the
    oldest turns are dropped from all three columns at once rather than cut
    a turn to fewer than :data:`MIN_TOKENS_PER_TURN` (32) tokens; the kept
    turns keep their numbers.

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

    Under a budget of 12 tokens (4 characters each without a tokenizer) the
    short parts stay whole and the long answer gets the rest:

    >>> long = pd.DataFrame({"prompt": ['["Why?"]'],
    ...                      "response_a": ['["Because."]'],
    ...                      "response_b": ['["' + "b" * 80 + '"]']})
    >>> fmt = ArenaTextFormatter(template="{prompt}|{response_a}|{response_b}",
    ...                          max_tokens=12)
    >>> fmt.fit_transform(long)[0]
    'Why?|Because.|bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
    """

    _parameter_constraints: dict = {
        "layout": [StrOptions({"joint", "pair"})],
        "turns": [StrOptions({"last", "all"})],
        "swap": ["boolean"],
        "template": [str, callable, None],
        "max_tokens": [Interval(Integral, 1, None, closed="left"), None],
        "tokenizer": [str, os.PathLike, callable, None],
        "cell_format": [StrOptions(set(CELL_FORMATS))],
    }

    def __init__(
        self,
        *,
        layout: str = "joint",
        turns: str = "last",
        swap: bool = False,
        template: str | Callable[[str, str, str], str] | None = None,
        max_tokens: int | None = None,
        tokenizer: Any = None,
        cell_format: str = "auto",
    ) -> None:
        self.layout = layout
        self.turns = turns
        self.swap = swap
        self.template = template
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.cell_format = cell_format

    def _check_params(self) -> None:
        self._validate_params()
        if self.template in CHAT_TEMPLATES:
            if self.template == "chat" and self.tokenizer is None:
                raise ValueError(
                    "ArenaTextFormatter(template='chat') renders texts with a tokenizer's "
                    "own chat template: pass tokenizer= (the checkpoint's directory, or "
                    "a loaded tokenizer)."
                )
        elif isinstance(self.template, str):
            template_fields(self.template, PAIR_FIELDS if self.layout == "pair" else ARENA_COLUMNS)

    def _loaded_tokenizer(self) -> Any:
        """The ``tokenizer`` parameter loaded (once per path), or ``None``."""
        if isinstance(self.tokenizer, (str, os.PathLike)):
            key = os.fspath(self.tokenizer)
            cached = getattr(self, "_lazy_tokenizer", None)
            if cached is None or cached[0] != key:
                cached = (key, load_tokenizer_param(key))
                self._lazy_tokenizer = cached
            return cached[1]
        return load_tokenizer_param(self.tokenizer)

    def _token_counter(self) -> TokenCounter | None:
        """The counter of the budget, loading the tokenizer on first use."""
        if self.max_tokens is None:
            return None
        return TokenCounter(self._loaded_tokenizer())

    def _chat(self) -> ChatRenderer | None:
        """The chat renderer ``template`` asks for, or ``None`` for a template string."""
        if self.template not in CHAT_TEMPLATES or self.tokenizer is None:
            return None
        tokenizer = self._loaded_tokenizer()
        if self.template == "auto" and is_gemma_chat_template(tokenizer):
            return None
        if not getattr(tokenizer, "chat_template", None):
            name = self.tokenizer
            if not isinstance(name, (str, os.PathLike)):
                name = type(tokenizer).__name__
            raise ValueError(
                f"ArenaTextFormatter(template='chat'): the tokenizer {name!r} "
                "has no chat template (a base checkpoint, not an instruction-tuned one?); "
                "use template='auto' (Gemma's templates) or a template string."
            )
        return ChatRenderer(tokenizer)

    def template_in_use(self) -> str:
        """Which template formats the texts: ``"gemma"`` (the default templates),
        a chat template's description, ``"custom string"`` or ``"callable"``.

        Loads the tokenizer when ``template`` is ``"chat"`` or ``"auto"``.

        Examples
        --------
        >>> ArenaTextFormatter(template="auto").template_in_use()  # no tokenizer: Gemma's
        'gemma'
        >>> ArenaTextFormatter(template="{prompt}").template_in_use()
        'custom string'
        """
        self._check_params()
        if callable(self.template):
            return "callable"
        if self.template is None or self.template in CHAT_TEMPLATES:
            chat = self._chat()
            return "gemma" if chat is None else chat.describe()
        return "custom string"

    def _check_rows(self, X: Any) -> None:
        self._check_params()
        check_arena_frame(X, "ArenaTextFormatter")
        self._token_counter()  # a tokenizer path that does not load fails here
        self._chat()  # and so does a chat template that is not there

    def transform(self, X: Any) -> np.ndarray:
        """Format each row of ``X`` into one text.

        Parameters
        ----------
        X : pandas.DataFrame or mapping
            Arena rows with columns ``prompt``, ``response_a``, ``response_b``.
            Other columns are ignored.

        Returns
        -------
        texts : ndarray of shape (n_rows,) or (n_rows, 2), dtype=object
            One ``str`` per row, in input order; with ``layout="pair"``, the
            texts of answer A and answer B in two columns.
        """
        if self.layout == "pair":
            return self._format_pairs(X)
        rows = self._format_parts(X)
        out = np.empty(len(rows), dtype=object)
        for i, (_, _, _, text) in enumerate(rows):
            out[i] = text
        return out

    def _format_pairs(self, X: Any) -> np.ndarray:
        """``layout="pair"``: one text per answer, ``(n_rows, 2)``."""
        parsed = self._parsed_rows(X)
        template = self.template
        chat = self._chat()
        fill: PiecesFill
        label = TURN_LABEL
        if chat is not None:
            fill, label = chat.pair, ""  # earlier turns are the chat's own turns
        elif callable(template):
            fill2 = cast(Callable[[str, str], str], template)  # template(prompt, response)
            fill = joined(lambda p, r, _: fill2(p, r))
        else:
            fmt = PAIR_TEMPLATE if template in (None, *CHAT_TEMPLATES) else template
            fill = joined(lambda p, r, _: fmt.format(prompt=p, response=r))

        render = self._renderer(fill, label)
        out = np.empty((len(parsed), 2), dtype=object)
        for i, (row, (prompt, answer_a, answer_b)) in enumerate(parsed):
            # turn labels for all three columns or none, as in the joint layout
            labelled = max(len(prompt), len(answer_a), len(answer_b)) > 1
            for j, answer in enumerate((answer_a, answer_b)):
                out[i, j] = render([prompt, answer, []], labelled, row)[2]
        return out

    def _format_parts(self, X: Any) -> list[tuple[Any, tuple, tuple, str]]:
        """Per row: label, (prompt, a, b) before and after the budget, text."""
        parsed = self._parsed_rows(X)
        chat = self._chat()
        render = self._renderer(joined(self._filler()) if chat is None else chat.joint)
        rows = []
        for row, parts in parsed:
            labelled = max(len(p) for p in parts) > 1
            rows.append((row, *render(parts, labelled, row)))
        return rows

    def _parsed_rows(self, X: Any) -> list[tuple[Any, list[list[str]]]]:
        """Validate the parameters and read each row's turns by the frame's
        one rule (A and B swapped with ``swap=True``)."""
        self._check_params()
        frame, turns = read_turns(X, "ArenaTextFormatter", self.cell_format)
        prompts, resp_a, resp_b = (turns[name] for name in ARENA_COLUMNS)
        if self.swap:
            resp_a, resp_b = resp_b, resp_a
        return [
            (row, [prompts[i], resp_a[i], resp_b[i]]) for i, row in enumerate(frame.index.tolist())
        ]

    def _renderer(
        self, fill: PiecesFill, label: str = TURN_LABEL
    ) -> Callable[[list[list[str]], bool, Any], tuple[tuple, tuple, str]]:
        """``render(parts, labelled, row)``: the parts' pieces filled in, then
        cut to the token budget if they exceed it; returns (source, kept,
        text), the parts joined before and after the budget."""
        counter = self._token_counter()
        overhead: list[int] = []  # the template's own tokens, counted once
        memo = None
        if counter is not None and counter.tokenizer is not None and not callable(self.template):
            # the same rows are cut again in every fold of a cross-validation
            # (the template and the tokenizer decide the labels and the chat)
            memo = BudgetMemo.of(counter.tokenizer, (self.layout, self.template, self.max_tokens))

        def render(parts: list[list[str]], labelled: bool, row: Any) -> tuple:
            pieces = tuple(turn_pieces(t, self.turns, labelled, label=label) for t in parts)
            source = tuple(join_pieces(p) for p in pieces)
            key = None
            if memo is not None:
                key = memo.key(self.turns, labelled, parts)
                hit = memo.get(key)
                if hit is not None:
                    return (source, *hit)
            text = fill(*pieces)
            if not isinstance(text, str):
                raise TypeError(
                    "The 'template' callable of ArenaTextFormatter must return a "
                    f"str; got {type(text).__name__} at row {row!r}."
                )
            result = cut(parts, labelled, pieces, text)
            if key is not None and memo is not None:
                memo.put(key, result)
            return (source, *result)

        def cut(
            parts: list[list[str]], labelled: bool, pieces: tuple, text: str
        ) -> tuple[tuple[str, ...], str]:
            kept = pieces
            max_tokens = self.max_tokens
            if counter is not None and max_tokens is not None and counter.total(text) > max_tokens:
                if not overhead:
                    overhead.append(counter.total(fill([], [], [])))
                kept = fit_to_budget(
                    parts,
                    self.turns,
                    labelled,
                    fill,
                    counter,
                    max_tokens,
                    overhead[0],
                    label,
                )
                text = fill(*kept)
            return tuple(join_pieces(k) for k in kept), text

        return render

    def _filler(self) -> Callable[[str, str, str], str]:
        template = self.template
        if callable(template):
            return template
        fmt = SEED_TEMPLATE if template in (None, *CHAT_TEMPLATES) else template
        return lambda p, a, b: fmt.format(prompt=p, response_a=a, response_b=b)

    def _output_names(self) -> list[str]:
        # one text per row, or the texts of answer A and answer B
        return ["text_a", "text_b"] if self.layout == "pair" else ["text"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


def __getattr__(name: str) -> Any:
    # names gemma-pref 0.1's module at this path held that moved on (gemma_pref._compat)
    return _compat.moved_out(__name__, name)
