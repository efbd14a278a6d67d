# SPDX-License-Identifier: Apache-2.0
"""Locate (downloading a Hub name once), fingerprint and describe checkpoints.

A checkpoint directory is found (or downloaded into the Hugging Face cache),
identified by a content fingerprint, and read for what its configuration
says (hidden size, layer count, model type). transformers and
huggingface_hub are imported inside functions so that ``import gemma_pref``
stays light.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from ..exceptions import ModelNotFoundError

__all__ = [
    "HUB_PATTERNS",
    "resolve_model_dir",
    "snapshot_commit",
    "model_fingerprint",
    "load_config",
    "hidden_size_of",
    "num_hidden_layers_of",
    "model_type_of",
    "library_versions",
    "describe",
]

logger = logging.getLogger(__name__)


_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5")


#: What a download of a Hub checkpoint fetches: configuration, tokenizer and
#: safetensors weights (not the other weight formats many repositories also hold).
HUB_PATTERNS = (
    "*.json",
    "*.safetensors",
    "*.model",
    "*.txt",
    "*.jinja",
    "*.tiktoken",
)


def resolve_model_dir(
    model_name_or_path: str | os.PathLike[str], revision: str | None = None
) -> Path:
    """Return the local checkpoint directory for ``model_name_or_path``.

    A path to a directory holding ``config.json`` is used as is. Otherwise a
    Hugging Face Hub name (``"Qwen/Qwen2.5-0.5B-Instruct"``) is found in the
    local Hugging Face cache at ``revision`` (a branch, tag or commit;
    ``None``: ``main``), or downloaded into it through ``huggingface_hub``,
    with its progress bars and the user's token (``HF_TOKEN`` or
    ``huggingface-cli login``), as transformers does: configuration,
    tokenizer and safetensors weights (:data:`HUB_PATTERNS`). With
    ``HF_HUB_OFFLINE=1`` nothing is downloaded.

    Raises
    ------
    ModelNotFoundError
        Naming the path or name (and the revision), when it is neither a
        checkpoint directory nor a name that is cached or can be downloaded
        (offline, unknown, gated without a token, no network).
    """
    raw = os.fspath(model_name_or_path)
    path = Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model_name_or_path={raw!r} is a directory but has no config.json; "
                "expected a Hugging Face checkpoint directory (config.json, weights "
                "and tokenizer files, as written by save_pretrained)."
            )
        return path.resolve()
    if path.exists():
        raise ModelNotFoundError(
            f"model_name_or_path={raw!r} is a file; expected a Hugging Face checkpoint directory."
        )
    at = "" if revision is None else f" at revision {revision!r}"
    if not _is_hub_name(raw):
        raise ModelNotFoundError(
            f"model_name_or_path={raw!r} does not exist: expected a local Hugging Face "
            "checkpoint directory, or a Hugging Face Hub name such as "
            "'Qwen/Qwen2.5-0.5B-Instruct'."
        )
    cached = _from_hf_cache(raw, revision)
    if cached is not None:
        return cached
    if _offline():
        raise ModelNotFoundError(
            f"model_name_or_path={raw!r}{at} is not in the local Hugging Face cache and "
            "HF_HUB_OFFLINE=1 forbids downloading it: expected a local Hugging Face "
            "checkpoint directory, or the name of a model already in the cache. Download "
            "it where the Hub is reachable (huggingface-cli download "
            f"{raw}), or unset HF_HUB_OFFLINE."
        )
    return _download(raw, revision)


def _is_hub_name(name: str) -> bool:
    """Whether ``name`` can be a Hub repository id (``org/name`` or ``name``)."""
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        return False
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _cache_dir() -> str | None:
    """The Hugging Face cache the user set (read now, not at import)."""
    return os.environ.get("HF_HUB_CACHE") or None


def _from_hf_cache(name: str, revision: str | None = None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        found = snapshot_download(
            name, revision=revision, local_files_only=True, cache_dir=_cache_dir()
        )
    except Exception:  # not cached, or not a valid repo id
        return None
    path = Path(found)
    return path if (path / "config.json").is_file() else None


def _download(name: str, revision: str | None) -> Path:
    """Download a Hub checkpoint into the Hugging Face cache; return its snapshot."""
    from huggingface_hub import snapshot_download

    at = "" if revision is None else f" at revision {revision!r}"
    logger.info("downloading %s%s from the Hugging Face Hub", name, at)
    try:
        found = Path(
            snapshot_download(
                name, revision=revision, allow_patterns=list(HUB_PATTERNS), cache_dir=_cache_dir()
            )
        )
    except Exception as exc:  # unknown repository, gated, no network, ...
        why = (str(exc).strip().splitlines() or [""])[0]
        raise ModelNotFoundError(
            f"model_name_or_path={name!r}{at} is neither a local checkpoint directory nor "
            f"a model that could be downloaded from the Hugging Face Hub "
            f"({type(exc).__name__}: {why})"
        ) from exc
    if not (found / "config.json").is_file():
        raise ModelNotFoundError(
            f"model_name_or_path={name!r}{at}: the Hub repository holds no config.json; "
            "expected a Hugging Face checkpoint (config.json, weights and tokenizer files)."
        )
    return found


def snapshot_commit(model_dir: Path) -> str | None:
    """The commit of a Hugging Face cache snapshot directory, else ``None``."""
    parts = Path(model_dir).parts
    if len(parts) >= 2 and parts[-2] == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parts[-1]):
        return parts[-1]
    return None


def _fingerprint_files(model_dir: Path) -> list[tuple[Path, bool]]:
    """Files of a checkpoint that define its vectors: (path, hash the content?)."""
    files = []
    for f in sorted(model_dir.iterdir()):
        if not f.is_file():
            continue
        if f.name.endswith(_WEIGHT_SUFFIXES):
            files.append((f, False))
        elif f.name in _TOKENIZER_FILES or f.name.endswith(".json"):
            # config.json, tokenizer files, sharded-weight indexes, ...
            files.append((f, True))
    return files


_FINGERPRINTS: dict[tuple[Any, ...], str] = {}
_FINGERPRINTS_LOCK = threading.Lock()


_SAMPLES = 16
_SAMPLE_BYTES = 64 * 1024


def _sampled_digest(path: Path, size: int) -> bytes:
    """Hash of 16 evenly spaced 64 KiB blocks of a file (1 MiB read at most)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= _SAMPLES * _SAMPLE_BYTES:
            digest.update(f.read())
        else:
            step = (size - _SAMPLE_BYTES) // (_SAMPLES - 1)
            for i in range(_SAMPLES):
                f.seek(i * step)
                digest.update(f.read(_SAMPLE_BYTES))
    return digest.digest()


def model_fingerprint(model_dir: Path, *, include_path: bool = True) -> str:
    """A cheap, content-based identity of a checkpoint directory.

    Hashes the directory path (unless ``include_path=False``), the content of
    ``config.json``, the tokenizer files and every other ``*.json`` file, and
    for each weight file its name, size and 16 evenly spaced 64 KiB blocks of
    its content (weights can be tens of gigabytes: reading them whole would
    cost more than embedding). Re-saving other weights or another
    configuration in place changes the fingerprint. Without the path, the
    same files copied elsewhere (another node of a cluster, a Kaggle dataset
    mounted under another name) give the same fingerprint.

    The result is memoised per process on the ``stat`` signature (name, size,
    modification time, inode) of those files, so calling this before every
    ``transform`` costs a few ``stat`` calls. A snapshot of the Hugging Face
    cache adds its commit (the revision) to the hash.
    """
    model_dir = Path(model_dir)
    files = _fingerprint_files(model_dir)
    signature: list[Any] = [str(model_dir), include_path]
    stats = []
    for f, _ in files:
        st = f.stat()
        stats.append(st)
        signature.append((f.name, st.st_size, st.st_mtime_ns, st.st_ino))
    key = tuple(signature)
    with _FINGERPRINTS_LOCK:
        cached = _FINGERPRINTS.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    if include_path:
        digest.update(str(model_dir).encode() + b"\0")
    commit = snapshot_commit(model_dir)
    if commit is not None:  # a Hub revision: part of the identity wherever it is copied
        digest.update(b"revision:" + commit.encode() + b"\0")
    for (f, by_content), st in zip(files, stats):
        if by_content:
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        else:
            digest.update(f"{f.name}:{st.st_size}:".encode())
            digest.update(_sampled_digest(f, st.st_size) + b"\0")
    value = digest.hexdigest()
    with _FINGERPRINTS_LOCK:
        if len(_FINGERPRINTS) > 256:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[key] = value
    return value


def load_config(model_dir: Path) -> Any:
    """Load the model's configuration (no weights)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir, local_files_only=True)


def hidden_size_of(config: Any) -> int:
    """Width of the last hidden state, for text and multimodal configs."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(text, attr, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"cannot find the hidden size in the configuration of {type(config).__name__}")


def num_hidden_layers_of(config: Any) -> int | None:
    """Number of decoder layers of a text or multimodal config, or ``None``."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text, "num_hidden_layers", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_type_of(model_dir: Path) -> str | None:
    """The ``model_type`` of a checkpoint's config.json (``None`` if unreadable)."""
    try:
        value = json.loads((Path(model_dir) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def library_versions(quantization: str | None = None) -> dict[str, str | None]:
    """Major.minor versions of the libraries that compute the vectors.

    Part of the embedding cache key: a new torch or transformers minor release
    may change a model's numerics (patch releases are taken to not).
    """
    names = ["torch", "transformers"] + (["bitsandbytes"] if quantization else [])
    return {name: _minor_version(name) for name in names}


@functools.cache
def _minor_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return ".".join(version(name).split("+")[0].split(".")[:2])
    except PackageNotFoundError:
        return None


def describe(model_dir: Path) -> dict[str, Any]:
    """Small JSON-able description of a checkpoint, for cache metadata."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    return {
        "path": str(model_dir),
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
    }
