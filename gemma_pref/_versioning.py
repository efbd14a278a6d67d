# SPDX-License-Identifier: Apache-2.0
"""Version stamps: which gemma-pref and libraries wrote a pickle or a saved model.

Estimators stamp the gemma-pref version into their pickled state (as
scikit-learn does for its own estimators) and warn with
:class:`~gemma_pref.exceptions.VersionMismatchWarning` when unpickled under
another version. :mod:`gemma_pref.persistence` and :mod:`gemma_pref.persistence.safe`
record :func:`environment_versions` in the files they write and check them on
load with :func:`warn_versions`.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from ._version import __version__
from .exceptions import VersionMismatchWarning

__all__ = [
    "STAMP",
    "check_state",
    "environment_versions",
    "stamp_state",
    "versioned",
    "warn_versions",
]

#: The attribute under which a pickled estimator records the gemma-pref version.
STAMP = "_gemma_pref_version"
#: Packages whose version is checked on load (others are recorded only).
CHECKED = ("gemma_pref", "scikit-learn", "catboost")


def environment_versions() -> dict[str, str | None]:
    """Versions recorded in saved files: gemma-pref and the libraries it uses.

    Returns
    -------
    versions : dict
        ``gemma_pref``, ``scikit-learn``, ``catboost``, ``numpy``, ``joblib``,
        ``torch``, ``transformers``, ``peft`` (``None`` when not installed) and
        ``python``.

    Examples
    --------
    >>> from gemma_pref._versioning import environment_versions
    >>> from gemma_pref import __version__
    >>> environment_versions()["gemma_pref"] == __version__
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"gemma_pref": __version__}
    for name in (
        "scikit-learn",
        "catboost",
        "numpy",
        "joblib",
        "torch",
        "transformers",
        "peft",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = ".".join(map(str, sys.version_info[:3]))
    return out


def versioned(format_name: str, format_version: int, **content: Any) -> dict[str, Any]:
    """The envelope of a saved file: its format, the library versions, ``content``."""
    return {
        "format": format_name,
        "format_version": format_version,
        "versions": environment_versions(),
        **content,
    }


def warn_versions(saved: Any, what: str, stacklevel: int = 3) -> None:
    """Warn once per package of :data:`CHECKED` whose saved version differs."""
    if not isinstance(saved, dict):
        saved = {}
    current = environment_versions()
    for name in CHECKED:
        original = saved.get(name, "unknown")
        now = current.get(name)
        if name == "catboost" and (original is None or now is None):
            continue  # saved without CatBoost, or CatBoost not needed here
        if original != now:
            warnings.warn(
                VersionMismatchWarning(
                    f"{what} was saved with {name} {original} and is loaded with "
                    f"{name} {now}. This might lead to breaking code or invalid "
                    f"results; refit it, or install {name}=={original}.",
                    package=name,
                    original_version=str(original),
                    current_version=str(now),
                ),
                stacklevel=stacklevel,
            )


def stamp_state(state: dict[str, Any]) -> dict[str, Any]:
    """Add the gemma-pref version to an estimator's pickled state."""
    state = dict(state)
    state[STAMP] = __version__
    return state


def check_state(estimator: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Pop the version stamp from a pickled state; warn when it differs.

    The counterpart of :func:`stamp_state`, for ``__setstate__``, as
    scikit-learn does for its own estimators (``InconsistentVersionWarning``).
    """
    state = dict(state)
    original = state.pop(STAMP, "unknown")
    if original != __version__:
        name = type(estimator).__name__
        warnings.warn(
            VersionMismatchWarning(
                f"Trying to unpickle estimator {name} from gemma_pref version "
                f"{original} when using version {__version__}. This might lead "
                "to breaking code or invalid results. Use at your own risk; "
                "refit it, or install the version that saved it.",
                package="gemma_pref",
                original_version=str(original),
                current_version=__version__,
                estimator_name=name,
            ),
            stacklevel=3,
        )
    return state
