# SPDX-License-Identifier: Apache-2.0
"""What gemma-pref keeps in its user cache: listed, sized and removed.

The user cache (:func:`~gemma_pref.backend.default_model.gemma_pref_home`:
``$GEMMA_PREF_HOME``, else ``~/.cache/gemma-pref``) holds three kinds of
entries, each a folder:

``onnx/<key>/``
    An ONNX export of a checkpoint with its head (``model.onnx`` and the
    ``meta.json`` the export writes: the checkpoint's fingerprint, the head,
    the opset, the export format; a quantized export adds ``quantization``
    and the ``source`` export it was made from).
``models/<name>/``
    A converted model (the default model, converted once from its GGUF
    file), marked complete by the conversion's ``.gemma-pref-complete`` file.
``embeddings/<key>/``
    The on-disk embedding cache of one model under one set of settings (the
    command line's default ``--cache-dir``): a ``meta.json`` whose
    ``fingerprint`` starts with the folder's name, and one ``.emb`` file per
    text.

An entry is gemma-pref's only when it carries that marker; anything else in
those folders (a file or folder of the user's) is listed as not
gemma-pref's and never removed. Hidden names (the temporary folder of an
export or a conversion that is running) are not listed and never touched.
A removal first renames the folder to a hidden name beside it, so that a
reader never finds half of one under its key, then deletes it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .default_model import gemma_pref_home

__all__ = [
    "KINDS",
    "CacheEntry",
    "find_entries",
    "format_size",
    "format_table",
    "list_cache",
    "remove_entries",
]

#: The folders of the user cache that hold gemma-pref's entries, in listing order.
KINDS = ("onnx", "models", "embeddings")

#: Keys of the ``meta.json`` of an ONNX export (see ``gemma_pref.backend._onnx``).
_ONNX_KEYS = frozenset({"model", "head", "opset", "format"})
#: Keys of the ``meta.json`` of a quantized ONNX export.
_QUANTIZED_KEYS = frozenset({"quantization", "source"})
#: The marker of a finished conversion (see :mod:`gemma_pref.backend.default_model`).
_COMPLETE = ".gemma-pref-complete"
#: Prefix of a folder being removed (hidden; listed as a leftover if a removal stopped).
_REMOVING = ".gemma-pref-removing-"
_HEX = re.compile(r"[0-9a-f]+")
_LAYERS = re.compile(r"layers=\(([^)]*)\)")


@dataclass(frozen=True)
class CacheEntry:
    """One folder (or stray file) of the user cache.

    Attributes
    ----------
    kind : str
        ``"onnx"``, ``"models"`` or ``"embeddings"``: the folder it lies in.
    name : str
        Its name in that folder (an ONNX export's or embedding cache's key).
    path : pathlib.Path
    size : int
        Bytes it takes on disk, as ``du -s --block-size=1`` counts them
        (allocated blocks, each hard-linked file once).
    own : bool
        Whether gemma-pref wrote it (it carries gemma-pref's marker); only
        such entries are ever removed.
    created : float or None
        When it was completed (POSIX time of its marker file), ``None`` when
        not gemma-pref's.
    what : str
        One line saying what it is.
    model : str or None
        The checkpoint: its fingerprint (ONNX exports), its path (embedding
        caches) or its model type (converted models).
    head : str or None
        What an ONNX export's graph returns, e.g.
        ``"PoolingHead(mode='mean', layers=(8, 9, 10, 11, 12))"``.
    layers : tuple of int or None
        The hidden states pooled (``None``: the last one, or not known).
    quantization : str or None
        The quantization of a quantized export or of the vectors.
    source : str or None
        The export a quantized export was made from.
    files : int
        Files in it.
    meta : dict
        The ``meta.json`` (or ``config.json`` of a converted model) as read.
    """

    kind: str
    name: str
    path: Path
    size: int
    own: bool
    created: float | None = None
    what: str = "not gemma-pref's"
    model: str | None = None
    head: str | None = None
    layers: tuple[int, ...] | None = None
    quantization: str | None = None
    source: str | None = None
    files: int = 0
    meta: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        """``"<kind>/<name>"``, as ``gemma-pref cache remove`` takes it."""
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (``created`` as an ISO 8601 local time)."""
        created = None
        if self.created is not None:
            local = datetime.fromtimestamp(self.created).astimezone()
            created = local.isoformat(timespec="seconds")
        return {
            "key": self.key,
            "kind": self.kind,
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "own": self.own,
            "created": created,
            "what": self.what,
            "model": self.model,
            "head": self.head,
            "layers": None if self.layers is None else list(self.layers),
            "quantization": self.quantization,
            "source": self.source,
            "files": self.files,
        }


def _home(home: str | os.PathLike[str] | None) -> Path:
    return gemma_pref_home() if home is None else Path(home).expanduser()


def _kinds(kind: str | Iterable[str] | None) -> tuple[str, ...]:
    kinds = KINDS if kind is None else (kind,) if isinstance(kind, str) else tuple(kind)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(
                f"Unknown cache kind {k!r}: expected one of {', '.join(map(repr, KINDS))}."
            )
    return kinds


def _disk_usage(path: Path) -> tuple[int, int]:
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


_RECOGNISERS = {"onnx": _onnx_entry, "models": _model_entry, "embeddings": _embedding_entry}


def _inspect(kind: str, path: Path) -> CacheEntry:
    """The entry at ``path`` in the ``kind`` folder, read now."""
    found: dict[str, Any] | None = None
    if path.name.startswith(_REMOVING) and path.is_dir() and not path.is_symlink():
        found = {"what": "left over from an interrupted removal"}
    elif path.is_dir() and not path.is_symlink():
        try:
            found = _RECOGNISERS[kind](path)
        except OSError:
            found = None
    size, files = _disk_usage(path)
    if found is None:
        return CacheEntry(kind, path.name, path, size, False, files=files)
    if kind == "embeddings" and found.get("what", "").startswith("embedding"):
        vectors = files - ("meta" in found)
        found["what"] = f"{vectors:,} vectors: {found['what']}"
    return CacheEntry(kind, path.name, path, size, True, files=files, **found)


def _listed(kind: str, path: Path) -> bool:
    """Whether a name in a kind's folder is listed: not a hidden temporary
    name (a running export's or conversion's), not a conversion's lock file."""
    name = path.name
    if name.startswith(_REMOVING):
        return True
    if name.startswith("."):
        return False
    return not (kind == "models" and name.endswith(".lock") and path.is_file())


def list_cache(
    kind: str | Iterable[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
) -> list[CacheEntry]:
    """List what the user cache holds, gemma-pref's entries and anything else.

    Parameters
    ----------
    kind : str, iterable of str or None, default=None
        ``"onnx"``, ``"models"``, ``"embeddings"`` or several; ``None``: all.
    home : str, os.PathLike or None, default=None
        The cache's root; ``None``: :func:`~gemma_pref.backend.default_model.gemma_pref_home`.

    Returns
    -------
    entries : list of CacheEntry
        By kind (in :data:`KINDS` order), then name. Entries with
        ``own=False`` are not gemma-pref's: :func:`remove_entries` refuses
        them.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> home = Path(tempfile.mkdtemp())
    >>> list_cache(home=home)
    []
    >>> (home / "onnx").mkdir()
    >>> _ = (home / "onnx" / "notes.txt").write_text("mine")
    >>> [(e.key, e.own, e.what) for e in list_cache(home=home)]
    [('onnx/notes.txt', False, "not gemma-pref's")]
    """
    root = _home(home)
    entries = []
    for k in _kinds(kind):
        folder = root / k
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if _listed(k, path):
                entries.append(_inspect(k, path))
    return entries


def find_entries(
    keys: Iterable[str],
    *,
    home: str | os.PathLike[str] | None = None,
) -> list[CacheEntry]:
    """The entries that ``keys`` name, in order, each once.

    Parameters
    ----------
    keys : iterable of str
        Each ``"<kind>/<name>"`` or a name alone; the name may be shortened
        to a prefix that names one entry (as ``git`` takes commit ids).
    home : str, os.PathLike or None, default=None
        The cache's root; ``None``: :func:`~gemma_pref.backend.default_model.gemma_pref_home`.

    Returns
    -------
    entries : list of CacheEntry
        gemma-pref's or not (see ``own``).

    Raises
    ------
    ValueError
        A key that names no entry, or more than one.
    """
    entries = list_cache(home=home)
    found: dict[str, CacheEntry] = {}
    for key in keys:
        kind, _, name = key.rstrip("/").rpartition("/")  # a shell completes a folder's "/"
        pool = [e for e in entries if not kind or e.kind == kind]
        if kind and kind not in KINDS:
            raise ValueError(
                f"Unknown cache kind {kind!r} in {key!r}: expected one of "
                f"{', '.join(map(repr, KINDS))}."
            )
        matches = [e for e in pool if e.name == name] or [
            e for e in pool if name and e.name.startswith(name)
        ]
        if not matches:
            raise ValueError(
                f"No entry {key!r} in the gemma-pref cache {str(_home(home))!r}; "
                "'gemma-pref cache list' shows the keys."
            )
        if len(matches) > 1:
            raise ValueError(
                f"{key!r} names {len(matches)} entries of the gemma-pref cache "
                f"({', '.join(e.key for e in matches)}); give the whole key."
            )
        found.setdefault(matches[0].key, matches[0])
    return list(found.values())


def _rmtree(path: Path) -> None:
    """Delete ``path``; what another process deleted first is not an error."""

    def ignore_missing(func: Any, name: str, error: Any) -> None:
        exc = error[1] if isinstance(error, tuple) else error
        if not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=ignore_missing)
    else:  # pragma: no cover - Python < 3.12
        shutil.rmtree(path, onerror=ignore_missing)


def remove_entries(
    entries: Iterable[CacheEntry | str],
    *,
    home: str | os.PathLike[str] | None = None,
) -> list[CacheEntry]:
    """Remove gemma-pref's entries from the user cache; never anything else.

    Every entry is checked first, read again from disk: if one is not
    gemma-pref's, nothing is removed. Each folder is renamed to a hidden name
    beside it (so that no reader finds part of one under its key), then
    deleted. An entry another process removed meanwhile is skipped.

    Parameters
    ----------
    entries : iterable of CacheEntry or str
        Entries from :func:`list_cache`, or keys as :func:`find_entries`
        takes them.
    home : str, os.PathLike or None, default=None
        The cache's root, for keys; ``None``:
        :func:`~gemma_pref.backend.default_model.gemma_pref_home`.

    Returns
    -------
    removed : list of CacheEntry
        What was removed, as it was just before (``size`` is what was freed).

    Raises
    ------
    ValueError
        An entry that is not gemma-pref's (nothing is removed), or a key that
        names no entry.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> home = Path(tempfile.mkdtemp())
    >>> (home / "models" / "mine").mkdir(parents=True)
    >>> remove_entries(["models/mine"], home=home)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'models/mine' in the gemma-pref cache is not gemma-pref's ...
    >>> (home / "models" / "mine").is_dir()
    True
    """
    given = list(entries)
    keys = [e for e in given if isinstance(e, str)]
    named = iter(find_entries(keys, home=home) if keys else [])
    chosen: dict[Path, CacheEntry] = {}
    for item in given:  # in the order given, each once
        entry = item if isinstance(item, CacheEntry) else next(named, None)
        if entry is not None:
            chosen.setdefault(entry.path, entry)
    current = []
    for entry in chosen.values():
        if not entry.path.exists() and not entry.path.is_symlink():
            continue  # removed meanwhile
        now = _inspect(entry.kind, entry.path)
        if not now.own:
            raise ValueError(
                f"{now.key!r} in the gemma-pref cache is not gemma-pref's (it carries no "
                "gemma-pref marker): it is never removed; delete it yourself if you mean to."
            )
        current.append(now)
    removed = []
    for entry in current:
        path = entry.path
        if path.name.startswith(_REMOVING):
            hidden = path
        else:
            hidden = path.with_name(f"{_REMOVING}{path.name}-{secrets.token_hex(4)}")
            try:
                os.rename(path, hidden)
            except FileNotFoundError:
                continue  # removed meanwhile
        _rmtree(hidden)
        removed.append(entry)
    return removed


def format_size(n: float) -> str:
    """Bytes in binary units, as the command line prints them.

    Examples
    --------
    >>> format_size(0), format_size(4096), format_size(1536 * 2**20), format_size(3 * 2**40)
    ('0 B', '4.0 KiB', '1.5 GiB', '3.0 TiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_table(entries: list[CacheEntry]) -> str:
    """The table ``gemma-pref cache list`` prints: a row per entry, then the totals."""
    rows = [("KEY", "SIZE", "CREATED", "WHAT")]
    for e in entries:
        created = "-"
        if e.created is not None:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
        what = e.what if e.own else "not gemma-pref's (never removed)"
        rows.append((e.key, format_size(e.size), created, what))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    own = [e for e in entries if e.own]
    other = [e for e in entries if not e.own]
    total = f"total: {format_size(sum(e.size for e in own))} in {_count(len(own))} of gemma-pref's"
    if other:
        total += (
            f"; {format_size(sum(e.size for e in other))} in {_count(len(other))} "
            "not gemma-pref's, kept"
        )
    return "\n".join([*lines, total])


def _count(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"
