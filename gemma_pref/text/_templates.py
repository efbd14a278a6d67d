# SPDX-License-Identifier: Apache-2.0
"""The templates of :class:`~gemma_pref.text.ArenaTextFormatter` and the chat renderer.

Gemma's own templates (:data:`SEED_TEMPLATE`, :data:`PAIR_TEMPLATE`), the body of a joint
text under a checkpoint's chat template (:data:`CHAT_JOINT_BODY`), :class:`ChatRenderer`
(texts through ``apply_chat_template``) and the check of a template string's fields.
This module never imports torch.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

from ..data._cells import excerpt
from ..data.schema import ARENA_COLUMNS
from .budget import Piece, join_pieces

__all__ = [
    "CHAT_JOINT_BODY",
    "CHAT_TEMPLATES",
    "PAIR_FIELDS",
    "PAIR_TEMPLATE",
    "SEED_TEMPLATE",
    "ChatRenderer",
    "PiecesFill",
    "is_gemma_chat_template",
    "joined",
    "template_fields",
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

PiecesFill = Callable[[list[Piece], list[Piece], list[Piece]], str]


def joined(fill: Callable[[str, str, str], str]) -> PiecesFill:
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


def template_fields(template: str, allowed: Sequence[str] = ARENA_COLUMNS) -> set[str]:
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
