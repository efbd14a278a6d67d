# SPDX-License-Identifier: Apache-2.0
"""The truncation check of rows of two texts in :class:`~gemma_pref.embedding.GemmaEmbedder`.

:class:`PairCheck` finds the rows whose two texts right truncation leaves identical, or without
an answer, and warns (:class:`~gemma_pref.exceptions.TruncationWarning`) at the caller's line
(:func:`caller_stacklevel`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..exceptions import TruncationWarning

__all__ = ["PAIR_CHECKS", "PAIR_CHECKS_MAX", "PairCheck", "caller_stacklevel", "pair_flags"]


#: The truncation check of rows of two texts (see :class:`PairCheck`): a
#: digest of the tokenizer, ``max_length`` and the two texts to (identical
#: texts, answer A lost, answer B lost). Each row is tokenized for it once per
#: process, not once per fold of a cross-validation; at most
#: ``PAIR_CHECKS_MAX`` rows (then it starts over), three booleans each.
PAIR_CHECKS: dict[str, tuple[bool, bool, bool]] = {}
PAIR_CHECKS_MAX = 200_000


def pair_flags(
    text_a: str, text_b: str, a: Sequence[int], b: Sequence[int], max_length: int
) -> tuple[bool, bool, bool]:
    """(identical, answer A lost, answer B lost) of one row's two texts and
    their token ids kept at ``max_length``.

    A text lost its answer when it was cut (it fills ``max_length``) and its
    kept tokens do not reach past the prefix it shares with the other text's
    tokens: only the common part (the prompt) survived. Texts that are equal
    as written are neither (the answers are the same).
    """
    if text_a == text_b:
        return False, False, False
    a, b = list(a), list(b)

    def lost(x: list[int], y: list[int]) -> bool:
        return len(x) >= max_length and x == y[: len(x)]

    return a == b, lost(a, b), lost(b, a)


class PairCheck:
    """Which rows of two texts right truncation at ``max_length`` leaves
    identical, or without an answer; warns (:class:`TruncationWarning`).

    Rows seen before (same tokenizer and ``max_length``) are answered from
    :data:`PAIR_CHECKS`; the others need their texts' token ids, which the
    embedder computes once for the forward pass and the check together
    (:attr:`texts` are the texts to tokenize).
    """

    def __init__(self, texts: list[str], prefix: str, max_length: int) -> None:
        self.max_length = max_length
        self.rows = [(texts[i], texts[i + 1]) for i in range(0, len(texts), 2)]
        self.flags = np.zeros((len(self.rows), 3), dtype=bool)
        self.keys: dict[int, str] = {}
        for r, (a, b) in enumerate(self.rows):
            if a == b:
                continue  # the same answer twice: nothing was lost
            h = hashlib.blake2b(digest_size=20)
            for part in (prefix, a, b):
                data = part.encode("utf-8", "surrogatepass")
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
            key = h.hexdigest()
            hit = PAIR_CHECKS.get(key)
            if hit is None:
                self.keys[r] = key
            else:
                self.flags[r] = hit
        self.texts = list(dict.fromkeys(t for r in self.keys for t in self.rows[r]))

    def finish(self, ids_of: dict[str, list[int]], tokenize: Callable[[list[str]], list]) -> None:
        """Check the rows not seen before: ``ids_of`` holds token ids already
        computed, ``tokenize(texts)`` gives the others'."""
        todo = [t for t in self.texts if t not in ids_of]
        if todo:
            ids_of.update(zip(todo, tokenize(todo)))
        if len(PAIR_CHECKS) + len(self.keys) > PAIR_CHECKS_MAX:
            PAIR_CHECKS.clear()
        for r, key in self.keys.items():
            a, b = self.rows[r]
            flags = pair_flags(a, b, ids_of[a], ids_of[b], self.max_length)
            self.flags[r] = flags
            PAIR_CHECKS[key] = flags

    def warn(self, labels: list[Any] | None) -> None:
        """Issue :class:`TruncationWarning` when a row is concerned; ``labels``:
        the input's index, ``None`` for positions. The warning names the
        caller's line (the first frame outside gemma_pref and scikit-learn)."""
        concerned = np.flatnonzero(self.flags.any(axis=1))
        if not len(concerned):
            return
        identical, lost_a, lost_b = (int(n) for n in self.flags.sum(axis=0))
        shown = [int(i) if labels is None else labels[i] for i in concerned[:5]]
        listed = ", ".join(map(repr, shown)) + (", ..." if len(concerned) > 5 else "")
        where = f"rows {listed}" if labels is not None else f"at positions {listed}"
        length = self.max_length
        message = (
            f"GemmaEmbedder keeps the first max_length={length} tokens of each text: in "
            f"{len(concerned)} of {len(self.rows)} rows of two texts ({where}) a text "
            "kept only the part it shares "
            f"with the other, so its answer lost all its tokens (answer A in {lost_a} "
            f"rows, answer B in {lost_b}) and in {identical} rows the two texts became "
            "the same tokens although they differ: the model cannot tell their answers "
            "apart. Give the prompt and each answer their shares of the tokens with the "
            "token budget: make_recipe_formatter(budget=True), the command line's "
            f"--budget, or ArenaTextFormatter(layout='pair', max_tokens={length}, "
            "tokenizer=<the embedder's model>); or raise max_length."
        )
        warnings.warn(
            TruncationWarning(
                message,
                counts={"identical": identical, "answer_a_lost": lost_a, "answer_b_lost": lost_b},
                rows=shown,
                n_rows=len(self.rows),
                max_length=length,
            ),
            stacklevel=caller_stacklevel(),
        )


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by this function's caller
    name the first frame outside gemma_pref and scikit-learn: the user's line
    that called ``fit``, ``transform`` or ``cross_val_score``, not a wrapper."""
    import sys

    import sklearn

    import gemma_pref

    roots = tuple(
        os.path.dirname(os.path.abspath(path)) + os.sep
        for path in (gemma_pref.__file__, sklearn.__file__)
    )
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(roots):
        frame, level = frame.f_back, level + 1
    return level
