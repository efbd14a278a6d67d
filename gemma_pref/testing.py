# SPDX-License-Identifier: Apache-2.0
"""Build tiny random checkpoints offline, for tests, docs and examples.

Each checkpoint is a real Hugging Face directory (``config.json``,
``model.safetensors``, tokenizer files with the family's special tokens and
chat template) written by ``save_pretrained``: it is loaded through exactly the
code path a user's own checkpoint takes. Its weights are random, so its
embeddings carry no meaning; it exists to exercise the code.
:func:`make_tiny_gemma` writes a Gemma 2; :func:`make_tiny_checkpoint` any of
the :data:`TINY_FAMILIES` (Gemma 2, Gemma 3, Qwen2 as in Qwen2.5, Qwen3, Llama
as in Llama 3, Mistral).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TINY_FAMILIES", "build_tiny_tokenizer", "make_tiny_checkpoint", "make_tiny_gemma"]

_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def _training_texts() -> list[str]:
    from .data.sample import load_arena_sample

    df = load_arena_sample()
    texts: list[str] = []
    for column in ("prompt", "response_a", "response_b"):
        for cell in df[column]:
            texts.extend(t for t in json.loads(cell) if t)
    return texts


def build_tiny_tokenizer(vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer with Gemma's special tokens, trained on the
    bundled arena sample (offline, a few seconds)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        padding_side="right",
    )


def make_tiny_gemma(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    vocab_size: int = 2048,
    seed: int = 0,
) -> Path:
    """Write a tiny random Gemma-2 causal LM and its tokenizer to ``path``.

    The tokenizer is a byte-level BPE trained on the bundled arena sample, with
    Gemma's special tokens (``<bos>``, ``<eos>``, ``<pad>``,
    ``<start_of_turn>``, ``<end_of_turn>``); it prepends ``<bos>`` as Gemma's
    does. The model is a ``Gemma2ForCausalLM`` built from a small
    ``Gemma2Config`` with seeded random weights, saved in float32 safetensors.
    Nothing is downloaded.

    Parameters
    ----------
    path : str or os.PathLike
        Directory to create (or reuse if empty).
    hidden_size : int, default=64
        Width of the model, and so of its embeddings.
    num_hidden_layers : int, default=2
        Number of decoder layers (Gemma-2 alternates sliding and global ones).
    vocab_size : int, default=2048
        Target size of the BPE vocabulary.
    seed : int, default=0
        Seed of the random weights.

    Returns
    -------
    path : pathlib.Path
        The checkpoint directory, ready for ``GemmaEmbedder(path)``.

    Examples
    --------
    >>> import tempfile
    >>> from gemma_pref.testing import make_tiny_gemma
    >>> tiny = make_tiny_gemma(tempfile.mkdtemp())
    >>> sorted(p.name for p in tiny.glob("*.json"))[:2]
    ['config.json', 'generation_config.json']
    """
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(vocab_size)
    heads = 4
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        head_dim=hidden_size // heads,
        max_position_embeddings=8192,
        sliding_window=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    devnull_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Gemma2ForCausalLM(config).eval()
    finally:
        torch.random.set_rng_state(devnull_state)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# ------------------------------------------------------------------ families
#: Gemma 2's chat template (instruction-tuned checkpoints): ``model`` turns.
_GEMMA_CHAT = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
#: Qwen2.5's ChatML, with its default system turn.
_QWEN25_CHAT = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: Qwen3's ChatML: no default system turn.
_QWEN3_CHAT = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: Llama 3's header-and-eot turns.
_LLAMA3_CHAT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
#: Mistral Instruct's ``[INST]`` turns.
_MISTRAL_CHAT = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class _Family:
    config: str  # the transformers configuration class
    model: str  # the causal LM class
    specials: tuple[str, ...]
    bos: str | None  # prepended on encoding when set
    eos: str
    pad: str | None  # None: the family ships no pad token (Llama, Mistral)
    chat: str
    extra: tuple[tuple[str, Any], ...] = ()  # configuration fields of the family


#: The decoder families :func:`make_tiny_checkpoint` writes.
TINY_FAMILIES: dict[str, _Family] = {
    "gemma2": _Family(
        "Gemma2Config",
        "Gemma2ForCausalLM",
        ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        "<bos>",
        "<eos>",
        "<pad>",
        _GEMMA_CHAT,
        (("sliding_window", 128),),
    ),
    "gemma3": _Family(
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        "<bos>",
        "<eos>",
        "<pad>",
        _GEMMA_CHAT,
        (("sliding_window", 128),),
    ),
    "qwen2": _Family(
        "Qwen2Config",
        "Qwen2ForCausalLM",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        None,
        "<|im_end|>",
        "<|endoftext|>",
        _QWEN25_CHAT,
    ),
    "qwen3": _Family(
        "Qwen3Config",
        "Qwen3ForCausalLM",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        None,
        "<|im_end|>",
        "<|endoftext|>",
        _QWEN3_CHAT,
    ),
    "llama": _Family(
        "LlamaConfig",
        "LlamaForCausalLM",
        (
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ),
        "<|begin_of_text|>",
        "<|eot_id|>",
        None,
        _LLAMA3_CHAT,
    ),
    "mistral": _Family(
        "MistralConfig",
        "MistralForCausalLM",
        ("<unk>", "<s>", "</s>"),
        "<s>",
        "</s>",
        None,
        _MISTRAL_CHAT,
        (("sliding_window", 128),),
    ),
}


@functools.lru_cache(maxsize=4)
def _trained_bpe(vocab_size: int) -> str:
    """A byte-level BPE trained on the arena sample, as JSON (trained once a process)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    return str(tok.to_str())


def _family_tokenizer(family: _Family, vocab_size: int) -> Any:
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_trained_bpe(vocab_size))
    tok.add_special_tokens(list(family.specials))
    if family.bos is not None:
        bos = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A",
            pair=f"{family.bos} $A $B",
            special_tokens=[(family.bos, bos)],
        )
    named = {family.bos, family.eos, family.pad}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        additional_special_tokens=[t for t in family.specials if t not in named],
        padding_side="right",
    )
    tokenizer.chat_template = family.chat
    return tokenizer


def make_tiny_checkpoint(
    path: str | os.PathLike[str],
    family: str = "gemma2",
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    vocab_size: int = 1024,
    seed: int = 0,
) -> Path:
    """Write a tiny random causal LM of a decoder family, with its tokenizer.

    The tokenizer is a byte-level BPE trained on the bundled arena sample with
    the family's special tokens, its BOS rule (Qwen adds none; Gemma, Llama
    and Mistral prepend theirs), its pad token (Llama and Mistral have none,
    as theirs) and its instruction-tuned chat template. The model is built
    from a small configuration of the family's own class with seeded random
    weights, saved in float32 safetensors. Nothing is downloaded.

    Parameters
    ----------
    path : str or os.PathLike
        Directory to create (or reuse if empty).
    family : str, default="gemma2"
        A key of :data:`TINY_FAMILIES`.
    hidden_size, num_hidden_layers, vocab_size, seed
        As for :func:`make_tiny_gemma`.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import json, tempfile
    >>> from gemma_pref.testing import make_tiny_checkpoint
    >>> qwen = make_tiny_checkpoint(tempfile.mkdtemp(), "qwen2", num_hidden_layers=1)
    >>> json.loads((qwen / "config.json").read_text())["model_type"]
    'qwen2'
    """
    import torch
    import transformers

    if family not in TINY_FAMILIES:
        raise ValueError(f"family must be one of {', '.join(TINY_FAMILIES)}; got {family!r}")
    spec = TINY_FAMILIES[family]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _family_tokenizer(spec, vocab_size)
    heads = 4
    eos = tokenizer.convert_tokens_to_ids(spec.eos)
    config = getattr(transformers, spec.config)(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        head_dim=hidden_size // heads,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        **dict(spec.extra),
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = getattr(transformers, spec.model)(config).eval()
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
