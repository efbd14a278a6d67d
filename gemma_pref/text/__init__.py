# SPDX-License-Identifier: Apache-2.0
"""Text: arena rows to the strings a decoder reads, the token budget, structure features.

:class:`ArenaTextFormatter` renders rows with the seed template, the pair template or the
checkpoint's own chat template, fitting each text to a token budget;
:class:`ArenaStructureFeatures` counts what a row looks like (lengths, turns, markdown).
"""

from __future__ import annotations

from .features import ArenaStructureFeatures
from .formatting import PAIR_TEMPLATE, SEED_TEMPLATE, ArenaTextFormatter, truncation_report

__all__ = [
    "PAIR_TEMPLATE",
    "SEED_TEMPLATE",
    "ArenaStructureFeatures",
    "ArenaTextFormatter",
    "truncation_report",
]
