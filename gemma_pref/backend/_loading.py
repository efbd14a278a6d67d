# SPDX-License-Identifier: Apache-2.0
"""Locate (downloading a Hub name once), fingerprint and load checkpoints.

This is the only module that imports transformers and bitsandbytes, and it
imports them inside functions so that ``import gemma_pref`` stays light.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
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
    "resolve_dtype",
    "auto_dtype",
    "device_facts",
    "DeviceFacts",
    "nonfinite_advice",
    "model_type_of",
    "onnx_available",
    "resolve_backend",
    "dtype_name",
    "load_tokenizer",
    "load_model",
    "library_versions",
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


def truncated_config(model_dir: Path, num_layers: int) -> Any:
    """The checkpoint's configuration with only its first ``num_layers`` decoder layers.

    ``num_hidden_layers`` is set to ``num_layers``, and every per-layer list
    of the text configuration (a list or tuple as long as the layer count:
    ``layer_types`` of Gemma 2 and Gemma 3, which says for each layer whether
    it attends to a sliding window or to the whole text, and so which rotary
    embedding it uses) keeps its first ``num_layers`` entries. A model built
    from it has only those layers, and ``from_pretrained`` reads no weight of
    the others.
    """
    config = load_config(model_dir)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    total = num_hidden_layers_of(config)
    if total is None or not 1 <= num_layers <= total:
        raise ValueError(
            f"cannot keep {num_layers} decoder layers of {model_dir}: its configuration "
            f"has num_hidden_layers={total!r}"
        )
    for name, value in list(vars(text).items()):
        if isinstance(value, (list, tuple)) and len(value) == total and name != "architectures":
            setattr(text, name, type(value)(value[:num_layers]))
    text.num_hidden_layers = num_layers
    return config


_LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class _DropLoadReport(logging.Filter):
    """Drops transformers' load report, whose findings :func:`load_model`
    checks itself for a truncated stack (the dropped layers' weights are
    expected to be unused)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def _decoder_stack(model: Any) -> Any:
    """The module holding the decoder ``layers`` and the final ``norm``, or ``None``."""
    import torch

    for candidate in (model, getattr(model, "language_model", None), getattr(model, "model", None)):
        layers = getattr(candidate, "layers", None)
        norm = getattr(candidate, "norm", None)
        if isinstance(layers, torch.nn.ModuleList) and isinstance(norm, torch.nn.Module):
            return candidate
    return None


def _finish_truncation(model: Any, model_dir: Path, num_layers: int, info: dict) -> None:
    """Check a truncated load and drop the final norm (see :func:`load_model`)."""
    import torch

    stack = _decoder_stack(model)
    if stack is None or len(stack.layers) != num_layers:
        raise ValueError(
            f"{type(model).__name__} (from {model_dir}) has no stack of {num_layers} "
            "decoder layers and final norm (the 'layers' and 'norm' modules of Gemma, "
            "Gemma 2, Gemma 3 and Llama-style models) after keeping num_hidden_layers="
            f"{num_layers}: a middle layer of this architecture cannot be computed by "
            "truncation; use layer=-1"
        )
    # the final norm applies to the last layer only: the state of layer k of
    # the full model is the truncated stack's output before it
    stack.norm = torch.nn.Identity()
    unexpected = [
        k
        for k in info.get("unexpected_keys", ())
        if not ((m := _LAYER_KEY.search(k)) and int(m.group(1)) >= num_layers)
    ]
    missing = list(info.get("missing_keys", ()))
    if unexpected or missing:
        logger.warning(
            "Loading %s with %d decoder layers: %d checkpoint weights unused (%s), "
            "%d model weights not in the checkpoint (%s)",
            model_dir,
            num_layers,
            len(unexpected),
            ", ".join(sorted(unexpected)[:5]) or "none",
            len(missing),
            ", ".join(sorted(missing)[:5]) or "none",
        )


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (``/proc/cpuinfo``; empty where
    that is not readable, as on macOS and Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: CPU flags of the 8-bit dot-product instructions (VNNI) that ONNX Runtime's
#: int8 kernels use; without them the u8 x s8 products are summed in pairs
#: into 16 bits and can saturate unless the weights use 7 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX-512 VNNI,
    AVX-VNNI or AMX-INT8)."""
    return bool(cpu_flags() & VNNI_FLAGS)


def int8_settings() -> dict[str, Any]:
    """How the 8-bit ONNX Runtime path quantizes an export on this CPU:
    ONNX Runtime's dynamic quantization of the MatMul weights to int8, one
    scale per output channel; ``reduce_range`` (7-bit weights) on CPUs
    without VNNI, as ONNX Runtime advises for per-channel weights there.
    The vectors depend on these settings: they are part of the cache keys."""
    return {
        "method": "dynamic",
        "op_types": ["MatMul"],
        "weight_type": "int8",
        "per_channel": True,
        "reduce_range": not cpu_has_vnni(),
    }


#: ``model_type`` values (config.json) whose activations overflow float16 and
#: whose modelling code in transformers 5.24 does not clamp them: Gemma 3
#: (``modeling_gemma3.py`` has no clamp; transformers issue #36822).
FP16_OVERFLOW_MODEL_TYPES = frozenset({"gemma3", "gemma3_text"})


@dataclass(frozen=True)
class DeviceFacts:
    """What the choice of a compute dtype depends on, for one device.

    ``kind`` is the torch device type (``"cuda"``, ``"cpu"``, ...); ``bf16``
    whether it has native bfloat16 arithmetic (CUDA compute capability 8 or
    more: A100, L4, H100; not a T4 or V100; on CPUs, AVX-512-BF16 or AMX).
    """

    kind: str
    bf16: bool
    name: str = ""


def device_facts(device: str) -> DeviceFacts:
    """The :class:`DeviceFacts` of ``device`` on this machine."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        major, minor = torch.cuda.get_device_capability(index)
        name = f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
        return DeviceFacts("cuda", major >= 8, name)
    if kind == "cpu":
        return DeviceFacts("cpu", cpu_supports_bf16(), "CPU")
    return DeviceFacts(kind, False, kind)


def auto_dtype(
    facts: DeviceFacts, model_type: str | None = None, quantization: str | None = None
) -> tuple[str, str]:
    """What ``dtype="auto"`` computes in: ``(dtype name, why)``.

    A pure function of the device's facts, the checkpoint's ``model_type``
    and the quantization:

    - CUDA with bf16: bfloat16, 8-bit included (bitsandbytes 0.50's int8
      matmul casts its input to float16 only to quantize it, and returns the
      input's dtype: bfloat16 keeps the rest of the model out of float16).
    - CUDA without bf16 (T4, V100): float16, except for the architectures of
      :data:`FP16_OVERFLOW_MODEL_TYPES`, which overflow there: float32 (with
      4-/8-bit weights, float32 is the compute dtype of what is not quantized).
    - CPU: bfloat16 with native bf16 instructions (about 2x float32), else
      float32. Other devices: float32.

    Examples
    --------
    >>> t4 = DeviceFacts("cuda", bf16=False, name="Tesla T4")
    >>> auto_dtype(t4, "gemma2")[0], auto_dtype(t4, "gemma3_text")[0]
    ('float16', 'float32')
    >>> auto_dtype(DeviceFacts("cuda", bf16=True), "gemma2", "8bit")[0]
    'bfloat16'
    """
    if facts.kind == "cuda":
        if facts.bf16:
            return "bfloat16", "native bf16 on this GPU"
        if model_type in FP16_OVERFLOW_MODEL_TYPES:
            return "float32", f"no bf16 on this GPU, and {model_type} overflows in float16"
        return "float16", "no bf16 on this GPU"
    if facts.kind == "cpu":
        if facts.bf16:
            return "bfloat16", "native bf16 on this CPU"
        return "float32", "no native bf16 on this CPU"
    return "float32", f"float32 on {facts.kind}"


def nonfinite_advice(dtype_name: str, facts: DeviceFacts) -> str:
    """What to do about non-finite values computed in ``dtype_name`` on a
    device with ``facts``: only what that device can run."""
    if dtype_name == "float32":
        return "the model or its inputs produce them even in float32"
    if dtype_name == "float16" and not facts.bf16:
        where = "this GPU" if facts.kind == "cuda" else "this device"
        return (
            f"float16 overflows on some models (Gemma 3 among them) and {where} has no "
            "bfloat16: use dtype='float32' (with quantization='4bit' or '8bit' "
            "to fit the weights)"
        )
    if dtype_name == "float16":
        return "float16 overflows on some models: use dtype='bfloat16' or 'float32'"
    return "use dtype='float32'"


def model_type_of(model_dir: Path) -> str | None:
    """The ``model_type`` of a checkpoint's config.json (``None`` if unreadable)."""
    try:
        value = json.loads((Path(model_dir) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def resolve_dtype(
    torch_dtype: Any,
    device: str,
    quantization: str | None = None,
    model_type: str | None = None,
) -> Any:
    """Resolve the ``dtype`` parameter to a ``torch.dtype`` for ``device``.

    ``"auto"`` is :func:`auto_dtype` of the device's facts, the checkpoint's
    ``model_type`` (``None``: not known to overflow) and the quantization.
    """
    import torch

    if isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    if torch_dtype != "auto":
        return getattr(torch, torch_dtype)
    name, _ = auto_dtype(device_facts(device), model_type, quantization)
    return getattr(torch, name)


#: What ``pip install`` needs for the ONNX Runtime path (the ``onnx`` extra).
ONNX_REQUIREMENTS = ("onnxruntime", "onnx")


def onnx_available() -> bool:
    """Whether ONNX Runtime and ``onnx`` (which the exporter writes with) are
    installed, checked without importing them."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ONNX_REQUIREMENTS)


#: Values of the embedder's ``backend`` parameter.
BACKEND_CHOICES = ("auto", "torch", "onnxruntime")


def _resolve_backend(
    backend: str,
    devices: list[str],
    torch_dtype: Any,
    quantization: str | None,
    model_type: str | None = None,
    onnx_int8: bool = True,
) -> tuple[str, Any, str]:
    """Resolve the ``backend`` parameter: ``(backend, dtype, why)``.

    ``"auto"`` picks ONNX Runtime when every device is a CPU, the compute
    dtype resolves to float32 (a CPU without native bf16, or
    ``dtype="float32"``) and the ``onnx`` extra is installed; with
    ``quantization="8bit"`` on CPUs it picks ONNX Runtime's int8 weights
    (float32 activations) where the extra is installed, else bitsandbytes;
    ``"4bit"`` is always bitsandbytes (PyTorch). ``"onnxruntime"`` asked for
    explicitly computes in float32 (``dtype="auto"`` resolves to it), with
    float32 or 8-bit weights, and raises where it cannot run.
    ``onnx_int8=False`` (the fine-tuned classifier, trained on bitsandbytes'
    weights): 8-bit weights are bitsandbytes' on PyTorch only.
    """
    import torch

    cpu = all(d.split(":")[0] == "cpu" for d in devices)
    if backend == "onnxruntime":
        if not cpu:
            raise ValueError(
                f"backend='onnxruntime' runs on CPU devices only; got devices={devices}. "
                "Use backend='torch' (or 'auto') on GPUs."
            )
        if quantization not in ((None, "8bit") if onnx_int8 else (None,)):
            raise ValueError(
                f"backend='onnxruntime' runs float32{' or 8-bit' if onnx_int8 else ''} "
                f"weights; got quantization={quantization!r}. Use backend='torch' with "
                "bitsandbytes for these weights."
            )
        dtype = torch.float32 if torch_dtype == "auto" else resolve_dtype(torch_dtype, "cpu")
        if dtype != torch.float32:
            raise ValueError(
                f"backend='onnxruntime' computes in float32; got dtype={torch_dtype!r}."
            )
        if not onnx_available():
            raise ImportError(
                "backend='onnxruntime' needs onnxruntime and onnx: pip install 'gemma-pref[onnx]'"
            )
        return "onnxruntime", dtype, "asked for"
    if backend == "auto" and cpu and quantization == "8bit" and onnx_int8:
        dtype = torch.float32 if torch_dtype == "auto" else resolve_dtype(torch_dtype, "cpu")
        if dtype == torch.float32 and onnx_available():
            return "onnxruntime", dtype, "8-bit weights on CPU: ONNX Runtime int8"
    dtype = resolve_dtype(torch_dtype, devices[0], quantization, model_type)
    if backend == "torch":
        return "torch", dtype, "asked for"
    if not cpu:
        return "torch", dtype, "GPU"
    if quantization is not None:
        if quantization == "8bit" and dtype == torch.float32 and onnx_int8:
            return (
                "torch",
                dtype,
                "8bit weights (bitsandbytes); pip install 'gemma-pref[onnx]' for ONNX Runtime int8",
            )
        return "torch", dtype, f"{quantization} weights (bitsandbytes)"
    if dtype != torch.float32:
        if torch_dtype == "auto":
            return "torch", dtype, "native bf16 on this CPU"
        return "torch", dtype, f"{dtype_name(dtype)} asked for"
    if not onnx_available():
        return "torch", dtype, "float32; pip install 'gemma-pref[onnx]' for ONNX Runtime"
    why = "float32 on a CPU without native bf16" if torch_dtype == "auto" else "float32 on CPU"
    return "onnxruntime", dtype, why


@dataclass(frozen=True)
class ComputePath:
    """What a model step's forward passes run on: the backend, the compute
    dtype, the weights' quantization (``None``: the dtype's) and why."""

    backend: str
    dtype: Any
    why: str
    quantization: str | None


def resolve_compute(
    backend: str,
    devices: list[str],
    torch_dtype: Any,
    quantization: str | None,
    model_type: str | None = None,
    onnx_int8: bool = True,
    auto_int8: bool = True,
) -> ComputePath:
    """Resolve the ``backend``, ``dtype`` and ``quantization`` parameters
    together (see :func:`resolve_backend`).

    Under ``backend="auto"``, ``dtype="auto"`` and ``quantization=None`` on
    CPUs without native bf16, with ONNX Runtime installed, the weights are
    ONNX Runtime's int8 (float32 activations): on those CPUs it is 1.7x
    faster than float32 and it moved the default's cross-validated log loss
    by less than 0.003 (``docs/quality.md``). ``backend="onnxruntime"`` or
    ``dtype="float32"`` keep float32 weights there. ``auto_int8=False``
    (the caller's vectors were not measured faithful in int8, as the last
    hidden state's): float32 weights there too.
    """
    chosen, dtype, why = _resolve_backend(
        backend, devices, torch_dtype, quantization, model_type, onnx_int8
    )
    if (
        quantization is None
        and onnx_int8
        and auto_int8
        and backend == "auto"
        and chosen == "onnxruntime"
        and isinstance(torch_dtype, str)
        and torch_dtype == "auto"
        and not cpu_supports_bf16()
    ):
        return ComputePath(
            chosen, dtype, "no native bf16 on this CPU: ONNX Runtime int8 weights", "8bit"
        )
    return ComputePath(chosen, dtype, why, quantization)


def resolve_backend(*args: Any, **kwargs: Any) -> tuple[str, Any, str]:
    """``(backend, dtype, why)`` of :func:`resolve_compute` (its parameters)."""
    path = resolve_compute(*args, **kwargs)
    return path.backend, path.dtype, path.why


def dtype_name(dtype: Any) -> str:
    """``torch.float32`` -> ``"float32"`` (for logs, reports and cache keys)."""
    return str(dtype).replace("torch.", "")


def load_tokenizer(model_dir: Path, tokenizer_kwargs: dict | None = None) -> Any:
    """Load the tokenizer of a local checkpoint."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, **(tokenizer_kwargs or {})
    )


def quantization_config(quantization: str | None, dtype: Any) -> Any:
    """bitsandbytes config for ``"4bit"`` (nf4) or ``"8bit"``, else ``None``."""
    if quantization is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:  # pragma: no cover - bitsandbytes is a dependency
        raise ImportError(
            f"quantization={quantization!r} needs bitsandbytes: pip install 'bitsandbytes>=0.45'"
        ) from exc
    if quantization == "4bit":
        # nf4, not bitsandbytes' default fp4: on Gemma 3 270M fp4 moved mean-pooled
        # vectors to cosine 0.91-0.95 of float32, nf4 to 0.97-0.98.
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=False,
        )
    _quiet_repeated_bnb_logs()
    return BitsAndBytesConfig(load_in_8bit=True)


class _OncePerMessage(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _quiet_repeated_bnb_logs() -> None:
    # bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on
    # every 8-bit matmul of every forward pass; once is informative enough.
    log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _OncePerMessage) for f in log.filters):
        log.addFilter(_OncePerMessage())


def load_model(
    model_dir: Path,
    *,
    device: str,
    dtype: Any,
    quantization: str | None = None,
    model_kwargs: dict | None = None,
    progress: bool = True,
    num_labels: int | None = None,
    num_layers: int | None = None,
) -> Any:
    """Load a checkpoint on ``device``: its backbone, or a classifier.

    Without ``num_labels``, ``AutoModel`` maps a causal-LM checkpoint such as
    Gemma-2 to its base model, so the forward pass returns the last hidden
    state and never computes the vocabulary-sized logits; the model is frozen
    and in eval mode. With ``num_labels``, ``AutoModelForSequenceClassification``
    adds a fresh ``score`` head of that many outputs (for fine-tuning; the
    caller sets the modes). ``progress=False`` hides transformers' "Loading
    weights" bar.

    ``num_layers`` (backbone only) keeps the first ``num_layers`` decoder
    layers: the model is built from :func:`truncated_config`, so the other
    layers are never built and their weights never read, and its final norm
    is replaced by the identity, so that its ``last_hidden_state`` is the
    full model's ``hidden_states[num_layers]`` (the output of decoder layer
    ``num_layers``, before the norm that only the last layer gets).
    """
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    qconfig = quantization_config(quantization, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    if qconfig is not None or not device.startswith("cpu"):
        # load straight onto the device: 4-bit models cannot be moved later
        kwargs["device_map"] = {"": device}
    if num_layers is not None:
        if num_labels is not None:
            raise ValueError("num_layers truncates a backbone; got num_labels too")
        kwargs["config"] = truncated_config(model_dir, num_layers)
        kwargs["output_loading_info"] = True
    kwargs.update(model_kwargs or {})
    logger.info(
        "Loading %s on %s (dtype=%s, quantization=%s%s)",
        model_dir,
        device,
        dtype_name(dtype),
        quantization,
        "" if num_layers is None else f", first {num_layers} decoder layers",
    )
    hide = not progress and hf_logging.is_progress_bar_enabled()
    if hide:
        hf_logging.disable_progress_bar()
    auto = AutoModel if num_labels is None else AutoModelForSequenceClassification
    # "Some weights ... newly initialized" is expected for the fresh head
    verbosity = hf_logging.get_verbosity()
    if num_labels is not None:
        hf_logging.set_verbosity_error()
    # a truncated stack leaves the dropped layers' weights unused, which
    # transformers reports as a warning: _finish_truncation checks it instead
    report_filter = _DropLoadReport() if num_layers is not None else None
    report_logger = hf_logging.get_logger("transformers.modeling_utils")
    if report_filter is not None:
        report_logger.addFilter(report_filter)
    try:
        model = auto.from_pretrained(model_dir, **kwargs)
    finally:
        if report_filter is not None:
            report_logger.removeFilter(report_filter)
        hf_logging.set_verbosity(verbosity)
        if hide:
            hf_logging.enable_progress_bar()
    if num_layers is not None:
        model, info = model
        _finish_truncation(model, model_dir, num_layers, info)
    if hasattr(model, "config"):
        # the KV cache is useless for one forward pass and costs memory
        model.config.use_cache = False
    if num_labels is None:
        model.eval()
        model.requires_grad_(False)
    return model


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
