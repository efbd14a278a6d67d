# SPDX-License-Identifier: Apache-2.0
"""Embedding caches: a process-wide in-memory LRU and an optional on-disk store.

:class:`EmbeddingCache` owns everything about caching vectors: it assembles
the key (:meth:`EmbeddingCache.for_model`: the checkpoint's fingerprint, every
setting that changes the vectors, the versions of the libraries that compute
them, and the vector format), looks texts up in memory and on disk, embeds
each distinct missing text once, and writes the new vectors back after each
forward pass. :class:`~gemma_pref.GemmaEmbedder` only says which of its
settings change vectors and how to compute them.

Entries are keyed by :func:`entry_key`, a hash of the *settings fingerprint*
and the text. Changing the model or any such setting can therefore never
return a stale vector.

Why a process-wide cache: ``cross_val_score`` clones the pipeline once per fold
and every fold sees texts an earlier fold already embedded. With the cache,
each distinct text goes through the model once per process.

On disk, each entry is one small file written to a temporary name and renamed
into place (atomic on POSIX and Windows), so concurrent writers and crashes
never leave a partial entry under a valid name. Each file carries a checksum;
an entry that fails it (or holds a non-finite value) is reported with
:class:`CacheIntegrityWarning`, deleted and recomputed. A cache that cannot
be written (disk full, permissions) is reported with :class:`CacheWriteWarning`
and the embeddings are still returned: a cache never costs the work it was
meant to keep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..exceptions import CacheIntegrityWarning, CacheWriteWarning

__all__ = [
    "VECTOR_FORMAT",
    "DiskCache",
    "EmbeddingCache",
    "MemoryCache",
    "check_cache_dir",
    "clear_memory_cache",
    "entry_key",
    "memory_cache",
    "settings_fingerprint",
    "verify_disk_cache",
]

#: Bump when a change of the code changes the vectors it computes, so that
#: on-disk caches written by older versions are not reused.
VECTOR_FORMAT = 1

_MAGIC = b"GPEMB1\0\0"
_HEADER = struct.Struct("<8sI16s")  # magic, dim, blake2b-128 of the payload


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
logger = logging.getLogger(__name__)


def memory_cache() -> MemoryCache:
    """The process-wide in-memory cache (size: ``GEMMA_PREF_MEMORY_CACHE_MB``, 4096)."""
    return _MEMORY


def clear_memory_cache() -> None:
    """Empty the process-wide in-memory embedding cache."""
    _MEMORY.clear()


def check_cache_dir(root: str | os.PathLike[str]) -> Path:
    """Return ``root`` as a path; raise if it exists and is not a directory."""
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(
            "The 'cache_dir' parameter of GemmaEmbedder must be a directory "
            f"(created if missing); got {os.fspath(root)!r}, which is a file."
        )
    return path


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
        self.root = check_cache_dir(root)
        self.dir = self.root / fingerprint[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if description is not None and not meta.exists():
            try:
                _atomic_write(
                    meta,
                    json.dumps(
                        {"fingerprint": fingerprint, **description},
                        indent=2,
                        default=repr,
                    ).encode(),
                )
            except OSError:  # meta.json is for humans; the entries matter
                pass

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.emb"

    def get(self, key: str) -> np.ndarray | None:
        """The vector stored under ``key``, or ``None`` (missing or corrupt)."""
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # a directory, no permission, an I/O error
            warnings.warn(
                f"gemma-pref cache entry {path} cannot be read ({exc}); it is recomputed.",
                CacheIntegrityWarning,
                stacklevel=3,
            )
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

    def try_put(self, key: str, vec: np.ndarray) -> OSError | None:
        """Store ``vec`` under ``key`` atomically; return the error, if any.

        Safe to call from several threads and processes at once: the entry is
        written to a unique temporary file and renamed into place, so a reader
        sees either no entry or a whole one.
        """
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, _encode(vec))
        except OSError as exc:
            return exc
        return None

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` under ``key``; warn (:class:`CacheWriteWarning`) on failure."""
        error = self.try_put(key, vec)
        if error is not None:
            self.warn_write_errors([error], stacklevel=4)

    def warn_write_errors(self, errors: list[OSError], stacklevel: int = 4) -> None:
        """Issue one :class:`CacheWriteWarning` for entries that were not written."""
        warnings.warn(
            f"gemma-pref could not write {len(errors)} embedding cache "
            f"entr{'y' if len(errors) == 1 else 'ies'} under {self.dir} "
            f"({errors[0]}); the vectors are returned but not cached.",
            CacheWriteWarning,
            stacklevel=stacklevel,
        )


def verify_disk_cache(
    root: str | os.PathLike[str], *, delete: bool = False
) -> tuple[int, list[Path]]:
    """Check the checksum of every entry of an on-disk embedding cache.

    Parameters
    ----------
    root : str or os.PathLike
        A ``cache_dir`` given to :class:`~gemma_pref.GemmaEmbedder`.
    delete : bool, default=False
        Delete the entries that fail (they are recomputed on next use).

    Returns
    -------
    n_ok : int
        Entries whose header, length, checksum and values are valid.
    bad : list of pathlib.Path
        Entries that are truncated or corrupt.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> root = tempfile.mkdtemp()
    >>> DiskCache(root, "0" * 64).put("ab" * 20, np.ones(4, dtype=np.float32))
    >>> verify_disk_cache(root)
    (1, [])
    """
    n_ok, bad = 0, []
    for path in sorted(Path(root).expanduser().glob("*/*/*.emb")):
        try:
            ok = _decode(path.read_bytes()) is not None
        except OSError:
            ok = False
        if ok:
            n_ok += 1
            continue
        bad.append(path)
        if delete:
            try:
                path.unlink()
            except OSError:
                pass
    return n_ok, bad


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
    vec = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    if not np.isfinite(vec).all():  # gemma-pref never writes one: not an entry
        return None
    return vec


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class EmbeddingCache:
    """Vectors of one model under one set of settings: lookup, de-duplication,
    write-back.

    Parameters
    ----------
    fingerprint : str
        Settings fingerprint (see :meth:`for_model`).
    memory : MemoryCache or None
        The in-memory cache to use (``None``: none).
    disk : DiskCache or None
        The on-disk store to use (``None``: none).
    """

    def __init__(
        self, fingerprint: str, memory: MemoryCache | None, disk: DiskCache | None
    ) -> None:
        self.fingerprint = fingerprint
        self.memory = memory
        self.disk = disk

    @classmethod
    def for_model(
        cls,
        model_dir: Path,
        settings: dict[str, Any],
        *,
        memory: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        quantization: str | None = None,
    ) -> EmbeddingCache:
        """The cache of ``model_dir``'s vectors under ``settings``.

        The key holds the checkpoint's content fingerprint (re-saving other
        weights in place changes it), ``settings`` (every setting of the
        embedder that changes the vectors), the major.minor versions of torch,
        transformers (and bitsandbytes with ``quantization``) and
        :data:`VECTOR_FORMAT`.
        """
        from ..backend import _checkpoints

        settings = {
            **settings,
            "quantization": quantization,
            "format": VECTOR_FORMAT,
            "libraries": _checkpoints.library_versions(quantization),
        }
        # memoised on the files' stat: re-saving the model in place changes it
        model_fp = _checkpoints.model_fingerprint(model_dir)
        fingerprint = settings_fingerprint({"model": model_fp, **settings})
        disk = None
        if cache_dir is not None:
            disk = DiskCache(
                cache_dir, fingerprint, {**_checkpoints.describe(model_dir), **settings}
            )
        return cls(fingerprint, memory_cache() if memory else None, disk)

    def embed(
        self,
        texts: list[str],
        dim: int,
        compute: Any,
    ) -> np.ndarray:
        """Vectors of ``texts``, computing only the distinct ones not cached.

        Parameters
        ----------
        texts : list of str
        dim : int
            Width of a vector; a cached vector of another width is recomputed.
        compute : callable
            ``compute(missing_texts, on_batch)`` returns their vectors in
            order; it calls ``on_batch(rows, vectors)`` after each forward
            pass (``rows`` index ``missing_texts``), which writes them to the
            caches at once: a later failure keeps the work already done.

        Returns
        -------
        vectors : ndarray of shape (len(texts), dim), dtype=float32
        """
        out = np.empty((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        mem, disk = self.memory, self.disk
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            key = entry_key(self.fingerprint, text)
            vec = mem.get(key) if mem is not None else None
            if vec is None and disk is not None:
                vec = disk.get(key)
                if vec is not None and mem is not None:
                    mem.put(key, vec)
            if vec is not None and vec.shape == (dim,):
                out[i] = vec
            else:
                missing.setdefault(key, []).append(i)
        if not missing:
            return out
        keys = list(missing)
        logger.info(
            "Embedding %d distinct texts (%d of %d rows from cache)",
            len(keys),
            len(texts) - sum(len(v) for v in missing.values()),
            len(texts),
        )
        write_errors: list[OSError] = []

        def store(rows: np.ndarray, vecs: np.ndarray) -> None:
            for r, vec in zip(rows, vecs):
                if mem is not None:
                    mem.put(keys[r], vec)
                if disk is not None:
                    error = disk.try_put(keys[r], vec)
                    if error is not None:
                        write_errors.append(error)

        try:
            vecs = compute(
                [texts[missing[k][0]] for k in keys],
                store if mem is not None or disk is not None else None,
            )
        finally:
            if write_errors and disk is not None:
                disk.warn_write_errors(write_errors, stacklevel=5)
        for key, vec in zip(keys, vecs):
            out[missing[key]] = vec
        return out
