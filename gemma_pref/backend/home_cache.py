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

import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ._home_entries import RECOGNISERS, disk_usage
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

#: Prefix of a folder being removed (hidden; listed as a leftover if a removal stopped).
_REMOVING = ".gemma-pref-removing-"


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


def _inspect(kind: str, path: Path) -> CacheEntry:
    """The entry at ``path`` in the ``kind`` folder, read now."""
    found: dict[str, Any] | None = None
    if path.name.startswith(_REMOVING) and path.is_dir() and not path.is_symlink():
        found = {"what": "left over from an interrupted removal"}
    elif path.is_dir() and not path.is_symlink():
        try:
            found = RECOGNISERS[kind](path)
        except OSError:
            found = None
    size, files = disk_usage(path)
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
