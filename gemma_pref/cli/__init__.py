# SPDX-License-Identifier: Apache-2.0
"""The ``gemma-pref`` command line: ``fit``, ``predict``, ``cv``, ``embed`` and ``cache``.

This is the only package that writes to stdout. Every output file is written to
a temporary name and renamed into place, so a failed or interrupted run never
leaves a half-written file, and an existing file is only replaced when
``--overwrite`` is given.

The package's modules, each with one job:

- ``_parser``: the argument parser, its option groups and help texts;
- ``_fit_predict``: ``fit``, ``predict`` and ``cv``; ``_embed``: ``embed``;
  ``_cache``: ``cache list`` and ``cache remove``;
- ``_ray``: ``--engine ray`` (``embed`` and ``predict`` on Ray actors);
- ``_params``: from flags to estimators (``--layer``, the recipe's pipeline,
  the overrides ``predict`` applies to a loaded pipeline);
- ``_rows``: the rows a command reads; ``_submission``: submission planning
  and writing;
- ``_outputs``: the output policy (new, or with ``--overwrite`` gemma-pref's own
  output; never an input); ``_common``: the one-line error, printing, the
  summary line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from ..exceptions import ArenaFormatError
from ._common import CLIError, as_flags
from ._params import parse_layer
from ._parser import DEFAULT_PIPELINE, build_parser

__all__ = ["main", "build_parser", "parse_layer", "CLIError", "DEFAULT_PIPELINE"]

logger = logging.getLogger("gemma_pref.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gemma_pref").setLevel(level)
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("gemma-pref: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from ..distributed._cluster import root_cause

        cause = root_cause(exc)  # what failed in a Ray worker, not Ray's wrapper
        if isinstance(cause, Exception):
            exc = cause
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ArenaFormatError):
            message = as_flags(message)
        if not isinstance(exc, (CLIError, ValueError, OSError, ImportError)):
            message = f"{type(exc).__name__}: {message}"
        print(f"gemma-pref: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
