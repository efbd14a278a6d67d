# SPDX-License-Identifier: Apache-2.0
"""Build a tiny random Gemma-2 checkpoint offline, for tests, docs and examples.

The checkpoint is a real Hugging Face directory (``config.json``,
``model.safetensors``, tokenizer files) written by ``save_pretrained``: it is
loaded through exactly the code path a user's own checkpoint takes. Its weights
are random, so its embeddings carry no meaning; it exists to exercise the code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["build_tiny_tokenizer", "make_tiny_gemma"]

_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def _training_texts() -> list[str]:
    from .datasets import load_arena_sample

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
