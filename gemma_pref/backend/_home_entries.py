# SPDX-License-Identifier: Apache-2.0
"""Recognise gemma-pref's entries in its user cache, and measure them.

For each kind of entry of :mod:`gemma_pref.backend.home_cache` (``onnx``,
``models``, ``embeddings``), :data:`RECOGNISERS` reads a folder's marker
(``meta.json``, the conversion's ``.gemma-pref-complete``) and says what the
entry is, or ``None`` when it is not gemma-pref's; :func:`disk_usage` counts
what a folder takes on disk as ``du -s`` does.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RECOGNISERS", "disk_usage"]

#: Keys of the ``meta.json`` of an ONNX export (see ``gemma_pref.backend._onnx``).
_ONNX_KEYS = frozenset({"model", "head", "opset", "format"})
#: Keys of the ``meta.json`` of a quantized ONNX export.
_QUANTIZED_KEYS = frozenset({"quantization", "source"})
#: The marker of a finished conversion (see :mod:`gemma_pref.backend.default_model`).
_COMPLETE = ".gemma-pref-complete"
_HEX = re.compile(r"[0-9a-f]+")
_LAYERS = re.compile(r"layers=\(([^)]*)\)")


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes ``path`` takes on disk and the files in it, as ``du -s`` counts:
    allocated blocks of the folder, its subfolders and its files, each inode
    once, symbolic links not followed."""
    seen: set[tuple[int, int]] = set()
    total = files = 0

    def add(st: os.stat_result) -> int:
        nonlocal total
        ident = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and ident in seen:
            return 0
        seen.add(ident)
        blocks = getattr(st, "st_blocks", None)
        total += st.st_size if blocks is None else blocks * 512
        return 1

    try:
        add(path.lstat())
    except OSError:
        return 0, 0
    stack = [path] if path.is_dir() and not path.is_symlink() else []
    if not stack:
        return total, 1
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError:
            continue
        for child in children:
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                continue
            added = add(st)
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(child.path))
            else:
                files += added
    return total, files


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _layers_of(head: str) -> tuple[int, ...] | None:
    """The hidden states a head's ``repr`` names.

    >>> _layers_of("PoolingHead(mode='mean', layers=(8, 9, 10))")
    (8, 9, 10)
    >>> _layers_of("PoolingHead(mode='mean')") is None
    True
    """
    m = _LAYERS.search(head)
    if m is None:
        return None
    try:
        return tuple(int(x) for x in m.group(1).split(",") if x.strip())
    except ValueError:
        return None


def _short(value: Any) -> str | None:
    return None if value is None else str(value)


def _quantization_label(value: Any) -> str | None:
    """A quantized export's ``quantization`` in a few words.

    >>> _quantization_label({"method": "dynamic", "weight_type": "int8",
    ...                      "per_channel": True, "reduce_range": False})
    'int8 (dynamic, per channel)'
    >>> _quantization_label("8bit"), _quantization_label(None)
    ('8bit', None)
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        return str(value)
    details = [str(value["method"])] if value.get("method") else []
    details += [flag.replace("_", " ") for flag in ("per_channel",) if value.get(flag)]
    details += [flag for flag in ("reduce_range",) if value.get(flag)]
    label = str(value.get("weight_type") or "quantized")
    return f"{label} ({', '.join(details)})" if details else label


def _onnx_entry(path: Path) -> dict[str, Any] | None:
    meta = _read_json(path / "meta.json")
    if meta is None or not any(p.suffix == ".onnx" for p in path.iterdir()):
        return None
    keys = set(meta)
    if not (_ONNX_KEYS <= keys or _QUANTIZED_KEYS <= keys):
        return None
    source = _short(meta.get("source"))
    described = meta
    if source and not _ONNX_KEYS <= keys:
        # a quantized export names the export it was made from, which
        # describes the checkpoint and the head
        of_source = _read_json(path.parent / Path(source).name / "meta.json")
        described = of_source if of_source and _ONNX_KEYS <= set(of_source) else {}
    head = _short(described.get("head"))
    model = _short(described.get("model"))
    quantization = _quantization_label(meta.get("quantization"))
    what = "ONNX export"
    if quantization:
        what += f", {quantization}"
    if model:
        what += f" of model {model[:12]}"
    if head:
        what += f": {head}"
    if source:
        what += f" (from onnx/{Path(source).name})"
    return {
        "created": _mtime(path / "meta.json"),
        "what": what,
        "model": model,
        "head": head,
        "layers": _layers_of(head) if head else None,
        "quantization": quantization,
        "source": source,
        "meta": meta,
    }


def _model_entry(path: Path) -> dict[str, Any] | None:
    marker = path / _COMPLETE
    if not marker.is_file():
        return None
    config = _read_json(path / "config.json") or {}
    model_type = _short(config.get("model_type"))
    dtype = _short(config.get("dtype") or config.get("torch_dtype"))
    details = ", ".join(x for x in (model_type, dtype) if x)
    return {
        "created": _mtime(marker),
        "what": "converted model" + (f" ({details})" if details else ""),
        "model": model_type,
        "meta": config,
    }


def _embedding_files_only(path: Path) -> bool:
    """Whether ``path`` holds nothing but an embedding cache's entries
    (``<key[:2]>/<key>.emb``, and hidden temporary files), at least one."""
    found = False
    for sub in path.iterdir():
        if sub.name.startswith("."):
            continue
        if not (sub.is_dir() and len(sub.name) == 2 and _HEX.fullmatch(sub.name)):
            return False
        for f in sub.iterdir():
            if f.name.startswith("."):
                continue
            stem = f.name[: -len(".emb")]
            if not (
                f.name.endswith(".emb")
                and len(stem) == 40
                and _HEX.fullmatch(stem)
                and stem.startswith(sub.name)
            ):
                return False
            found = True
    return found


def _embedding_entry(path: Path) -> dict[str, Any] | None:
    meta = _read_json(path / "meta.json")
    if meta is None:
        # meta.json is written once, best effort; a folder of nothing but
        # the cache's own entries under a key's name is one too
        if not (len(path.name) == 24 and _HEX.fullmatch(path.name)):
            return None
        if not _embedding_files_only(path):
            return None
        return {"created": _mtime(path), "what": "embedding cache (no meta.json)"}
    fingerprint = meta.get("fingerprint")
    if not (isinstance(fingerprint, str) and path.name and fingerprint.startswith(path.name)):
        return None
    layers = meta.get("layers")
    try:
        layer_tuple = tuple(int(x) for x in layers) if isinstance(layers, list) else None
    except (TypeError, ValueError):
        layer_tuple = None
    settings = [
        _short(meta.get("model_type")),
        f"layers {', '.join(map(str, layer_tuple))}" if layer_tuple else "last layer",
        _short(meta.get("pooling")),
        _short(meta.get("dtype")),
        _short(meta.get("quantization")),
        _short(meta.get("backend")),
        f"{meta['max_length']} tokens" if meta.get("max_length") is not None else None,
    ]
    model = _short(meta.get("path"))
    what = "embeddings"
    if model:
        what += f" of {model}"
    what += f" ({', '.join(s for s in settings if s)})"
    return {
        "created": _mtime(path / "meta.json"),
        "what": what,
        "model": model,
        "layers": layer_tuple,
        "quantization": _short(meta.get("quantization")),
        "meta": meta,
    }


#: For each kind of entry: the folder's description (the fields of a
#: :class:`~gemma_pref.backend.home_cache.CacheEntry`), ``None`` when it is not gemma-pref's.
RECOGNISERS: dict[str, Callable[[Path], dict[str, Any] | None]] = {
    "onnx": _onnx_entry,
    "models": _model_entry,
    "embeddings": _embedding_entry,
}
