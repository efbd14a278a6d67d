# SPDX-License-Identifier: Apache-2.0
"""Token budgets: count tokens, join turns, and cut parts to their shares.

A text built from a prompt and two answers must fit a model's ``max_length``
without losing an answer to right truncation. :func:`fit_to_budget` cuts each
part (prompt, answer A, answer B) to a share of the budget by water-filling:
parts shorter than an equal share keep everything and the others split what
is left; within a part made of several turns, the same rule shares the part's
budget over its turns. :class:`TokenCounter` counts and cuts with a Hugging
Face fast tokenizer (exact, cuts on token boundaries of the original text) or,
without one, at :data:`CHARS_PER_TOKEN` characters per token.

:class:`~gemma_pref.ArenaTextFormatter` and
:func:`~gemma_pref.text.truncation_report` use this module; it never imports torch.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_TOKENS_PER_TURN",
    "TURN_LABEL",
    "BudgetMemo",
    "TokenCounter",
    "check_fast_tokenizer",
    "fit_to_budget",
    "join_pieces",
    "join_turns",
    "load_tokenizer_param",
    "turn_pieces",
    "water_fill",
]

#: Characters per token of the fallback counter used when no tokenizer is given.
CHARS_PER_TOKEN = 4

#: With ``turns="all"`` under a budget, the oldest turns are dropped rather
#: than cutting a turn to fewer tokens than this.
MIN_TOKENS_PER_TURN = 32

#: One piece of a joined column: a label (``"[Turn 2] "`` or ``""``) and a text.
Piece = tuple[str, str]

#: The label of turn ``i`` of a column joined with ``turns="all"``.
TURN_LABEL = "[Turn {i}] "


def water_fill(lengths: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` over parts: short parts keep all, the rest share equally.

    Examples
    --------
    >>> water_fill([10, 500, 800], 300)
    [10, 145, 145]
    >>> water_fill([10, 20], 300)
    [10, 20]
    """
    alloc = [0] * len(lengths)
    remaining = max(int(budget), 0)
    left = len(lengths)
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        take = min(int(lengths[i]), remaining // left)
        alloc[i] = take
        remaining -= take
        left -= 1
    return alloc


# ------------------------------------------------------------------- turns
def turn_pieces(
    turns: Sequence[str], mode: str, labelled: bool, first: int = 0, label: str = TURN_LABEL
) -> list[Piece]:
    """The (label, text) pieces of one column's turns.

    Parameters
    ----------
    turns : sequence of str
        The column's turns, oldest first.
    mode : {"last", "all"}
        ``"last"``: the last turn only. ``"all"``: every turn.
    labelled : bool
        With ``mode="all"``, prefix each turn with ``[Turn i] ``; without, the
        first turn alone is kept (a row with one turn).
    first : int, default=0
        Drop the oldest ``first`` turns (``mode="all"`` with labels), keeping
        the original turn numbers of the rest.
    label : str, default=TURN_LABEL
        The label of turn ``i`` (``str.format`` field ``i``); ``""`` keeps
        every turn unlabelled (turns that a chat template shows as turns).

    Examples
    --------
    >>> turn_pieces(["a", "b"], "all", True, first=1)
    [('[Turn 2] ', 'b')]
    """
    if not turns:
        return []
    if mode == "last":
        return [("", turns[-1])]
    if not labelled:
        return [("", turns[0])]
    return [(label.format(i=i), t) for i, t in enumerate(turns, start=1)][first:]


def join_pieces(pieces: Sequence[Piece]) -> str:
    """Join pieces with a blank line between them."""
    return "\n\n".join(label + text for label, text in pieces)


def join_turns(turns: Sequence[str], mode: str, labelled: bool, label: str = TURN_LABEL) -> str:
    """One column's turns as one string (see :func:`turn_pieces`).

    Examples
    --------
    >>> join_turns(["Hi", "And then?"], "all", True)
    '[Turn 1] Hi\\n\\n[Turn 2] And then?'
    >>> join_turns(["Hi", "And then?"], "last", True)
    'And then?'
    """
    return join_pieces(turn_pieces(turns, mode, labelled, label=label))


# ---------------------------------------------------------------- counting
class TokenCounter:
    """Count tokens and cut texts to a number of tokens.

    With a Hugging Face fast tokenizer, counts are exact and cuts fall on token
    boundaries of the original text (through the offset mapping, so the kept
    prefix is the original text, never a decoded approximation). Without one,
    a token is :data:`CHARS_PER_TOKEN` characters.

    Parameters
    ----------
    tokenizer : fast tokenizer or None, default=None

    Examples
    --------
    >>> counter = TokenCounter()
    >>> counter.count("abcdefghij"), counter.cut("abcdefghij", 2)
    (3, 'abcdefgh')
    """

    def __init__(self, tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer
        self._memo: dict[str, list[int]] = {}

    def total(self, text: str) -> int:
        """Tokens of a whole text, special tokens included (as a model sees it)."""
        if self.tokenizer is None:
            return -(-len(text) // CHARS_PER_TOKEN)
        return len(self.tokenizer(text)["input_ids"])

    def ends(self, text: str) -> list[int]:
        """Character offset at which each token of ``text`` ends (no special tokens)."""
        if not text:
            return []
        if self.tokenizer is None:
            return [*range(CHARS_PER_TOKEN, len(text), CHARS_PER_TOKEN), len(text)]
        ends = self._memo.get(text)
        if ends is None:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ends, last = [], 0
            for _, end in enc["offset_mapping"]:
                last = max(last, int(end))
                ends.append(last)
            if len(self._memo) >= 256:  # the parts of the row being cut
                self._memo.clear()
            self._memo[text] = ends
        return ends

    def count(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self.ends(text))

    def cut(self, text: str, n_tokens: int) -> str:
        """The longest prefix of ``text`` made of its first ``n_tokens`` tokens."""
        ends = self.ends(text)
        if n_tokens >= len(ends):
            return text
        return text[: ends[n_tokens - 1]] if n_tokens > 0 else ""

    def kept_chars(self, text: str, max_length: int) -> tuple[int, int]:
        """Tokens of ``text`` (special tokens included) and how many of its
        characters the first ``max_length`` tokens hold (right truncation)."""
        if self.tokenizer is None:
            n_tokens = -(-len(text) // CHARS_PER_TOKEN)
            return n_tokens, min(len(text), max_length * CHARS_PER_TOKEN)
        enc = self.tokenizer(text, return_offsets_mapping=True)
        n_tokens = len(enc["input_ids"])
        if n_tokens <= max_length:
            return n_tokens, len(text)
        ends = (int(e) for _, e in enc["offset_mapping"][:max_length])
        return n_tokens, max(ends, default=0)


def check_fast_tokenizer(tokenizer: Any, owner: str = "ArenaTextFormatter") -> None:
    """Raise ``ValueError`` unless ``tokenizer`` returns an offset mapping."""
    try:
        tokenizer("a", add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise ValueError(
            f"The 'tokenizer' parameter of {owner} must be a Hugging Face "
            "fast tokenizer (one that returns an offset mapping, as AutoTokenizer "
            f"loads by default); got {type(tokenizer).__name__} ({exc})."
        ) from None


#: Tokenizers loaded from a path, shared within the process: loading a large
#: vocabulary (Gemma's 262k tokens) takes seconds, and every clone of a
#: formatter (each cross-validation fold) loads the same one. Keyed by the
#: directory and the modification times of its files, so an edited checkpoint
#: is loaded again. The formatter only calls them without truncation or
#: padding, so sharing one leaves its settings as they are.
_TOKENIZERS: dict[tuple[str, tuple[tuple[str, int], ...]], Any] = {}
_TOKENIZERS_LOCK = threading.Lock()


def _files_stamp(path: Path) -> tuple[tuple[str, int], ...]:
    if not path.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()))


def _load_shared_tokenizer(path: Path) -> Any:
    from ..backend._load import load_tokenizer

    key = (os.fspath(path.resolve()), _files_stamp(path))
    with _TOKENIZERS_LOCK:
        if key not in _TOKENIZERS:
            _TOKENIZERS[key] = load_tokenizer(path)  # local_files_only=True
        return _TOKENIZERS[key]


class BudgetMemo:
    """The texts a formatter cut to its budget, per tokenizer and settings.

    Cutting a text tokenizes it several times; a cross-validation formats each
    row once per fold, with the same tokenizer (shared, see
    :func:`load_tokenizer_param`) and settings. The memo maps a digest of a
    row's joined parts to what was kept, so that each row is cut once per
    process. It lives as long as its tokenizer and holds at most
    :attr:`MAX_ENTRIES` rows (then starts over); entries are the kept texts
    only, at most the budget's tokens each.
    """

    MAX_ENTRIES = 100_000
    _BY_TOKENIZER: weakref.WeakKeyDictionary[Any, dict[Any, BudgetMemo]] = (
        weakref.WeakKeyDictionary()
    )
    _LOCK = threading.Lock()

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[tuple[str, ...], str]] = {}

    @classmethod
    def of(cls, tokenizer: Any, settings: Any) -> BudgetMemo | None:
        """The memo of ``tokenizer`` and ``settings`` (hashable), or ``None``
        where the tokenizer cannot be weakly referenced."""
        with cls._LOCK:
            try:
                memos = cls._BY_TOKENIZER.setdefault(tokenizer, {})
            except TypeError:
                return None
            return memos.setdefault(settings, cls())

    @staticmethod
    def key(turns: str, labelled: bool, parts: Sequence[Sequence[str]]) -> bytes:
        """Digest of a row's turns (prompt, A, B) and how they are joined."""
        digest = hashlib.blake2b(f"{turns}\0{labelled:d}".encode(), digest_size=20)
        for part in parts:
            digest.update(len(part).to_bytes(8, "little"))
            for turn in part:
                encoded = turn.encode("utf-8", "surrogatepass")
                digest.update(len(encoded).to_bytes(8, "little"))
                digest.update(encoded)
        return digest.digest()

    def get(self, key: bytes) -> tuple[tuple[str, ...], str] | None:
        return self._entries.get(key)

    def put(self, key: bytes, value: tuple[tuple[str, ...], str]) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = value


def load_tokenizer_param(tokenizer: Any, owner: str = "ArenaTextFormatter") -> Any:
    """Resolve a ``tokenizer`` parameter: None, a loaded tokenizer or a path.

    A directory is loaded with ``local_files_only=True``, once per process; a
    Hugging Face Hub name is found in the local cache or downloaded into it
    (:func:`gemma_pref.backend._checkpoints.resolve_model_dir`);
    :data:`~gemma_pref.backend.default_model.DEFAULT_MODEL` is the default model's. The
    result is checked to be a fast tokenizer.
    """
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (str, os.PathLike)):
        from ..backend.default_model import DEFAULT_MODEL, demo_model_path

        raw = os.fspath(tokenizer)
        try:
            if raw == DEFAULT_MODEL:
                path = demo_model_path()
            elif Path(raw).expanduser().is_dir():
                path = Path(raw).expanduser()
            else:  # a Hub name: the local Hugging Face cache, or downloaded once
                from ..backend._checkpoints import resolve_model_dir

                path = resolve_model_dir(raw)
            tokenizer = _load_shared_tokenizer(path)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"The 'tokenizer' parameter of {owner} is {raw!r}, from which "
                "no tokenizer can be loaded: expected a local directory with "
                "tokenizer files (such as the checkpoint given to GemmaEmbedder) or "
                f"a Hugging Face Hub name. ({exc})"
            ) from None
    check_fast_tokenizer(tokenizer, owner)
    return tokenizer


# ------------------------------------------------------------------ cutting
def _cut_column(
    pieces: Sequence[Piece], share: int, counter: TokenCounter
) -> tuple[list[Piece], float]:
    """Cut one column to about ``share`` tokens, water-filling over its turns.

    Returns the cut pieces and the fewest tokens left to a turn that was cut,
    when the column has several turns (``inf`` otherwise or when none was cut).
    """
    pieces = list(pieces)
    if counter.count(join_pieces(pieces)) <= share:
        return pieces, math.inf
    if len(pieces) == 1:
        label, text = pieces[0]
        return [(label, counter.cut(text, share - counter.count(label)))], math.inf
    frame = counter.count(join_pieces([(label, "") for label, _ in pieces]))
    lengths = [counter.count(t) for _, t in pieces]
    alloc = water_fill(lengths, share - frame)
    stub = min((k for k, n in zip(alloc, lengths) if k < n), default=math.inf)
    return [(label, counter.cut(t, k)) for (label, t), k in zip(pieces, alloc)], stub


def fit_to_budget(
    parts: Sequence[Sequence[str]],
    mode: str,
    labelled: bool,
    fill: Callable[[list[Piece], list[Piece], list[Piece]], str],
    counter: TokenCounter,
    max_tokens: int,
    overhead: int,
    label: str = TURN_LABEL,
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """Cut prompt, response_a and response_b so that the filled template fits.

    Parameters
    ----------
    parts : three sequences of str
        The turns of the prompt, answer A and answer B.
    mode, labelled
        How turns are joined (see :func:`turn_pieces`).
    fill : callable
        ``fill(prompt, response_a, response_b)`` gives the whole text from
        each part's (label, text) pieces (:func:`join_pieces` joins them as a
        string template shows them; a chat template shows them as turns).
    counter : TokenCounter
    max_tokens : int
        The budget of the whole text, special tokens included.
    overhead : int
        Tokens of the template alone (``counter.total(fill([], [], []))``).
    label : str, default=TURN_LABEL
        How turns are labelled (see :func:`turn_pieces`).

    Returns
    -------
    kept : tuple of three lists of (label, text)
        The pieces of each part, cut.

    Notes
    -----
    The budget left by the template is water-filled over the three columns
    and, within a column, over its turns. Token counts of parts do not add up
    exactly (merges across boundaries), so the budget is tightened by the
    measured excess until the whole text fits. With ``mode="all"``, the oldest
    turns are dropped (from all columns at once) while a turn would be cut to
    fewer than :data:`MIN_TOKENS_PER_TURN` tokens, or the text cannot fit
    otherwise, down to the last turn.
    """
    budget = max_tokens - overhead
    n_first = max(len(t) for t in parts) if mode == "all" and labelled else 1
    best: tuple[list[Piece], list[Piece], list[Piece]] | None = None
    for first in range(n_first):
        last_chance = first == n_first - 1
        cols = [turn_pieces(t, mode, labelled, first, label) for t in parts]
        lengths = [counter.count(join_pieces(c)) for c in cols]
        slack = 0
        for _ in range(8):
            shares = water_fill(lengths, budget - slack)
            cut = [_cut_column(c, k, counter) for c, k in zip(cols, shares)]
            if not last_chance and min(stub for _, stub in cut) < MIN_TOKENS_PER_TURN:
                break  # drop the oldest turn instead
            p, a, b = (pieces for pieces, _ in cut)
            best = (p, a, b)
            excess = counter.total(fill(p, a, b)) - max_tokens
            if excess <= 0:
                return best
            if slack >= budget:
                break
            slack += excess
    assert best is not None
    return best  # best effort: the template or the turn labels alone overflow
