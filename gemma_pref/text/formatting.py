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
import string
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import ArenaRowsTransformerMixin, VersionedPickleMixin
from ..data._cells import excerpt, parse_turns
from ..data.schema import ARENA_COLUMNS, CELL_FORMATS, check_arena_frame, read_turns
from .budget import (
    CHARS_PER_TOKEN,
    MIN_TOKENS_PER_TURN,
    TURN_LABEL,
    BudgetMemo,
    Piece,
    TokenCounter,
    fit_to_budget,
    join_pieces,
    load_tokenizer_param,
    turn_pieces,
)

__all__ = [
    "ARENA_COLUMNS",
    "CHARS_PER_TOKEN",
    "CHAT_JOINT_BODY",
    "CHAT_TEMPLATES",
    "MIN_TOKENS_PER_TURN",
    "PAIR_TEMPLATE",
    "SEED_TEMPLATE",
    "ArenaTextFormatter",
    "ChatRenderer",
    "is_gemma_chat_template",
    "parse_turns",
    "truncation_report",
]

#: The template of the reference notebook: a Gemma chat turn holding the prompt
#: and both answers. ``str.format`` fields: ``prompt``, ``response_a``,
#: ``response_b``.
SEED_TEMPLATE = (
    "<start_of_turn>User prompt: {prompt}\n\nModel A :\n{response_a}"
    "\n\n----\n\nModel B:\n{response_b}<end_of_turn><eos>"
)

#: The template of ``layout="pair"``: Gemma's own chat format, one prompt and
#: one answer. ``str.format`` fields: ``prompt``, ``response``.
PAIR_TEMPLATE = (
    "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n{response}<end_of_turn>"
)
PAIR_FIELDS: tuple[str, str] = ("prompt", "response")

#: The text of the one user turn of ``layout="joint"`` under a chat template:
#: the reference notebook's body, without Gemma's markers.
CHAT_JOINT_BODY = (
    "User prompt: {prompt}\n\nModel A :\n{response_a}\n\n----\n\nModel B:\n{response_b}"
)
#: The ``template`` values that use the tokenizer's own chat template.
CHAT_TEMPLATES = ("chat", "auto")

_PiecesFill = Callable[[list[Piece], list[Piece], list[Piece]], str]


def _joined(fill: Callable[[str, str, str], str]) -> _PiecesFill:
    """A filler of joined strings as a filler of (label, text) pieces."""
    return lambda p, a, b: fill(join_pieces(p), join_pieces(a), join_pieces(b))


def is_gemma_chat_template(tokenizer: Any) -> bool:
    """Whether a tokenizer's chat template is Gemma's (``<start_of_turn>`` turns),
    or it has none: then ``template="auto"`` formats with Gemma's own templates
    (:data:`SEED_TEMPLATE`, :data:`PAIR_TEMPLATE`), byte for byte as always."""
    template = getattr(tokenizer, "chat_template", None)
    return not template or "<start_of_turn>" in str(template)


class ChatRenderer:
    """Texts through a tokenizer's own chat template (``apply_chat_template``).

    ``pair(prompt, answer)`` renders the conversation turn by turn (user,
    assistant, user, ...); ``joint(prompt, a, b)`` one user turn holding
    :data:`CHAT_JOINT_BODY`. A leading BOS the template writes is dropped when
    the tokenizer adds its own on encoding, so that the model sees one.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        bos = getattr(tokenizer, "bos_token", None)
        self._bos = ""
        if bos and tokenizer.bos_token_id is not None:
            ids = tokenizer("x")["input_ids"]
            if ids[:1] == [tokenizer.bos_token_id]:
                self._bos = str(bos)

    def render(self, messages: list[dict[str, str]]) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=False
        )
        if self._bos and text.startswith(self._bos):
            text = text[len(self._bos) :]
        return str(text)

    def pair(self, prompt: list[Piece], answer: list[Piece], _: list[Piece]) -> str:
        messages: list[dict[str, str]] = []
        for i in range(max(len(prompt), len(answer), 1)):
            messages.append({"role": "user", "content": prompt[i][1] if i < len(prompt) else ""})
            messages.append(
                {"role": "assistant", "content": answer[i][1] if i < len(answer) else ""}
            )
        return self.render(messages)

    def joint(self, prompt: list[Piece], a: list[Piece], b: list[Piece]) -> str:
        body = CHAT_JOINT_BODY.format(
            prompt=join_pieces(prompt), response_a=join_pieces(a), response_b=join_pieces(b)
        )
        return self.render([{"role": "user", "content": body}])

    def describe(self) -> str:
        return f"the checkpoint's chat template ({type(self.tokenizer).__name__})"


def _template_fields(template: str, allowed: Sequence[str] = ARENA_COLUMNS) -> set[str]:
    names = ", ".join("{" + f + "}" for f in allowed)
    fields = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(
                "The 'template' parameter of ArenaTextFormatter must use named "
                f"fields {names}; got a positional field in {excerpt(template)}."
            )
        fields.add(name)
    unknown = fields - set(allowed)
    if unknown:
        raise ValueError(
            "The 'template' parameter of ArenaTextFormatter may only use the "
            f"fields {names}; got {sorted(unknown)} in {excerpt(template)}."
        )
    return fields


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
            _template_fields(self.template, PAIR_FIELDS if self.layout == "pair" else ARENA_COLUMNS)

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
        fill: _PiecesFill
        label = TURN_LABEL
        if chat is not None:
            fill, label = chat.pair, ""  # earlier turns are the chat's own turns
        elif callable(template):
            fill2 = cast(Callable[[str, str], str], template)  # template(prompt, response)
            fill = _joined(lambda p, r, _: fill2(p, r))
        else:
            fmt = PAIR_TEMPLATE if template in (None, *CHAT_TEMPLATES) else template
            fill = _joined(lambda p, r, _: fmt.format(prompt=p, response=r))

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
        render = self._renderer(_joined(self._filler()) if chat is None else chat.joint)
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
        self, fill: _PiecesFill, label: str = TURN_LABEL
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
    >>> from gemma_pref.text.formatting import truncation_report
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
    render = formatter._renderer(_joined(lambda p, r, _: fmt.format(prompt=p, response=r)))
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
