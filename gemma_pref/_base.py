# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by gemma-pref's estimators (private to the package).

- :func:`fit_context`: scikit-learn's ``_fit_context``. Every ``fit`` of the
  package uses it, so parameters are validated declaratively from
  ``_parameter_constraints`` with scikit-learn's own error format ("The 'x'
  parameter of Foo must be ... Got ... instead."), and nested estimators are
  not validated twice. Both are private scikit-learn APIs; they are used
  rather than a hand-written copy of the same checks because users of
  scikit-learn know these messages, and the ``scikit-learn>=1.6,<1.10`` pin
  in pyproject.toml guards them. Stateless transformers, whose ``transform``
  works without ``fit``, also call ``self._validate_params()`` there.
- :class:`VersionedPickleMixin`: pickles stamp the gemma-pref version and drop
  lazily loaded state (attributes named ``_lazy_*``: model replicas,
  tokenizers), which is reloaded on next use.
- :class:`TextInputMixin` and :class:`StatelessTransformerMixin`: the tags of
  estimators whose input is texts or arena rows, and of transformers whose
  ``fit`` only validates (as scikit-learn's ``HashingVectorizer``);
  :class:`ArenaRowsTransformerMixin` adds that ``fit`` for transformers of
  raw arena rows.

What estimators running a checkpoint share is
:class:`gemma_pref.embedding._checkpoint.CheckpointMixin`, beside the engine it loads.
"""

from __future__ import annotations

import logging
from typing import Any

from sklearn.base import _fit_context

from ._versioning import check_state, stamp_state

__all__ = [
    "LAZY_PREFIX",
    "ArenaRowsTransformerMixin",
    "StatelessTransformerMixin",
    "TextInputMixin",
    "VersionedPickleMixin",
    "fit_context",
]

logger = logging.getLogger(__name__)

#: Attributes with this prefix hold state loaded on first use, never pickled.
LAZY_PREFIX = "_lazy_"

fit_context = _fit_context


class VersionedPickleMixin:
    """Stamp the gemma-pref version into pickles; drop ``_lazy_*`` state."""

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[misc]
        state = {k: v for k, v in state.items() if not k.startswith(LAZY_PREFIX)}
        return stamp_state(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # warns (VersionMismatchWarning) when pickled by another gemma-pref
        super().__setstate__(check_state(self, state))  # type: ignore[misc]


class TextInputMixin:
    """Tags of an estimator whose input is texts or arena rows, not numbers."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


class StatelessTransformerMixin(TextInputMixin):
    """A transformer whose ``fit`` only validates: always fitted, fit not required."""

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class ArenaRowsTransformerMixin(StatelessTransformerMixin):
    """A stateless transformer of raw arena rows: ``fit`` validates only.

    Subclasses define ``_check_rows(X)``, which validates the parameters and
    the columns of ``X`` (and raises on bad input), and ``_output_names()``,
    the names of their output columns; ``transform`` is theirs.
    """

    def _check_rows(self, X: Any) -> None:
        raise NotImplementedError

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> Any:
        """Validate the parameters and the columns of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows with columns ``prompt``, ``response_a``, ``response_b``.
        y : None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        self : object
            The transformer itself.
        """
        self._check_rows(X)
        return self

    def _output_names(self) -> list[str]:
        raise NotImplementedError

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored. Not used, present here for API consistency by convention.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The class documents its columns.
        """
        import numpy as np

        return np.asarray(self._output_names(), dtype=object)
