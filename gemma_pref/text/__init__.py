# SPDX-License-Identifier: Apache-2.0
"""Text: arena rows to the strings a decoder reads, the token budget, structure features.

:class:`ArenaTextFormatter` renders rows with the seed template, the pair template or the
checkpoint's own chat template, fitting each text to a token budget;
:class:`ArenaStructureFeatures` counts what a row looks like (lengths, turns, markdown).

Modules: ``formatting`` (:class:`ArenaTextFormatter`), ``_templates`` (the templates and the
chat renderer), ``budget`` (the token budget), ``truncation`` (:func:`truncation_report`) and
``features`` (:class:`ArenaStructureFeatures`).
"""

from __future__ import annotations

from ._templates import PAIR_TEMPLATE, SEED_TEMPLATE
from .features import ArenaStructureFeatures
from .formatting import ArenaTextFormatter
from .truncation import truncation_report

__all__ = [
    "PAIR_TEMPLATE",
    "SEED_TEMPLATE",
    "ArenaStructureFeatures",
    "ArenaTextFormatter",
    "truncation_report",
]
