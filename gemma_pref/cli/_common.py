# SPDX-License-Identifier: Apache-2.0
"""What every command shares: the one-line error, printing, and the closing summary
line with what the model ran on.
"""

from __future__ import annotations

import re
from typing import Any


class CLIError(Exception):
    """An error reported to the user as one line, exit status 1."""


def say(message: str = "") -> None:
    print(message, flush=True)


_PARAMETER = re.compile(r"\b(cell_format|format)='(\w+)'")


def as_flags(message: str) -> str:
    """A reader's message with its parameters as this command line's flags.

    Examples
    --------
    >>> as_flags("pass format='wsdm' or cell_format='text'")
    'pass --format wsdm or --cell-format text'
    """
    return _PARAMETER.sub(lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}", message)


def _compute(estimator: Any, formatter: Any = None) -> str:
    """``"; compute: ..."``: what the model step of ``estimator`` runs on, or ``""``."""
    from ..pipeline.steps import model_steps, text_formatters

    steps = model_steps(estimator)
    if not steps:
        return ""
    path = steps[-1].compute_path()  # the fitted copy, where a wrapper holds two
    devices = ",".join(path["devices"])
    layers = ""
    if path.get("layers", "last") != "last":
        run = path.get("decoder_layers", "all")
        layers = f", hidden states {','.join(map(str, path['layers']))} pooled" + (
            "" if run == "all" else f", {run} decoder layers run"
        )
    quantization = path.get("quantization")
    weights = "" if quantization is None else f"{quantization} weights, "
    formatters = text_formatters(estimator) if formatter is None else [formatter]
    template = "" if not formatters else f"; template: {formatters[-1].template_in_use()}"
    return (
        f"; compute: {path['backend']} {weights}{path['dtype']} on {devices} "
        f"({path['reason']}){layers}"
        f"{template}"
    )


def summary_line(
    name: str,
    rows: int,
    seconds: float,
    extra: str = "",
    estimator: Any = None,
    formatter: Any = None,
) -> None:
    rate = rows / seconds if seconds > 0 else float("inf")
    compute = "" if estimator is None else _compute(estimator, formatter)
    say(f"{name}: {rows} rows in {seconds:.1f} s ({rate:.2f} rows/s){extra}{compute}")
