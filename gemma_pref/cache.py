# SPDX-License-Identifier: Apache-2.0
"""Embedding caches: a process-wide in-memory LRU and an optional on-disk store.

Both are keyed by :func:`entry_key`, a hash of the *settings fingerprint* (the
model's identity plus every setting that changes the vectors: dtype,
quantization, pooling, max_length, padding, model and tokenizer options) and
the text. Changing any of them can therefore never return a stale vector.

Why a process-wide cache: ``cross_val_score`` clones the pipeline once per fold
and every fold sees texts an earlier fold already embedded. With the cache,
each distinct text goes through the model once per process.

On disk, each entry is one small file written to a temporary name and renamed
into place (atomic on POSIX and Windows), so concurrent writers and crashes
never leave a partial entry under a valid name. Each file carries a checksum;
an entry that fails it is reported with :class:`CacheIntegrityWarning`,
deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CacheIntegrityWarning",
    "DiskCache",
    "MemoryCache",
    "clear_memory_cache",
    "entry_key",
    "memory_cache",
    "settings_fingerprint",
]

_MAGIC = b"GPEMB1\0\0"
_HEADER = struct.Struct("<8sI16s")  # magic, dim, blake2b-128 of the payload


class CacheIntegrityWarning(UserWarning):
    """Issued when an on-disk cache entry is truncated or corrupt (it is recomputed)."""


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """Stable hex digest of a JSON-able settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


def entry_key(fingerprint: str, text: str) -> str:
    """Cache key of one text under one settings fingerprint."""
    h = hashlib.blake2b(digest_size=20)
    h.update(fingerprint.encode())
    h.update(b"\0")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class MemoryCache:
    """Thread-safe LRU of vectors, bounded in bytes.

    Parameters
    ----------
    max_bytes : int
        Least recently used entries are dropped beyond this size.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._bytes

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vec = self._data.get(key)
            if vec is not None:
                self._data.move_to_end(key)
            return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        vec = np.array(vec, dtype=np.float32, copy=True)
        vec.setflags(write=False)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if vec.nbytes > self.max_bytes:
                return
            self._data[key] = vec
            self._bytes += vec.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


def _default_limit() -> int:
    mb = os.environ.get("GEMMA_PREF_MEMORY_CACHE_MB", "4096")
    try:
        return int(float(mb) * 2**20)
    except ValueError:
        return 4096 * 2**20


_MEMORY = MemoryCache(_default_limit())


def memory_cache() -> MemoryCache:
    """The process-wide in-memory cache (size: ``GEMMA_PREF_MEMORY_CACHE_MB``, 4096)."""
    return _MEMORY


def clear_memory_cache() -> None:
    """Empty the process-wide in-memory embedding cache."""
    _MEMORY.clear()


class DiskCache:
    """Embedding store under ``root/<fingerprint[:24]>/<key[:2]>/<key>.emb``.

    Parameters
    ----------
    root : str or os.PathLike
        The user's ``cache_dir``. Created if missing.
    fingerprint : str
        Settings fingerprint; entries of other settings live in other folders.
    description : dict
        JSON-able description written once to ``meta.json`` for humans.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: str,
        description: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.dir = self.root / fingerprint[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if description is not None and not meta.exists():
            _atomic_write(
                meta,
                json.dumps(
                    {"fingerprint": fingerprint, **description},
                    indent=2,
                    default=repr,
                ).encode(),
            )

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.emb"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        vec = _decode(blob)
        if vec is None:
            warnings.warn(
                f"gemma-pref cache entry {path} is truncated or corrupt; "
                "it is deleted and recomputed.",
                CacheIntegrityWarning,
                stacklevel=3,
            )
            try:
                path.unlink()
            except OSError:
                pass
        return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _encode(vec))


def _encode(vec: np.ndarray) -> bytes:
    payload = np.ascontiguousarray(vec, dtype="<f4").tobytes()
    digest = hashlib.blake2b(payload, digest_size=16).digest()
    return _HEADER.pack(_MAGIC, len(payload) // 4, digest) + payload


def _decode(blob: bytes) -> np.ndarray | None:
    if len(blob) < _HEADER.size:
        return None
    magic, dim, digest = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size :]
    if magic != _MAGIC or len(payload) != 4 * dim:
        return None
    if hashlib.blake2b(payload, digest_size=16).digest() != digest:
        return None
    return np.frombuffer(payload, dtype="<f4").astype(np.float32)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
