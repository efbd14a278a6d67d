"""Library code logs and never prints; progress bars follow the logging level."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import gemma_pref as gp

PACKAGE = Path(gp.__file__).resolve().parent


def test_only_the_cli_writes_to_stdout():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in {"cli", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                if name == "print" or (
                    isinstance(f, ast.Attribute)
                    and f.attr == "write"
                    and isinstance(f.value, ast.Attribute)
                    and f.value.attr in {"stdout", "stderr"}
                ):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    ("level", "show", "expect_bar"),
    [
        (logging.WARNING, None, False),
        (logging.INFO, None, True),
        (logging.WARNING, True, True),
        (logging.INFO, False, False),
    ],
)
def test_progress_bar_follows_logging_level(tiny_gemma, capfd, level, show, expect_bar):
    logger = logging.getLogger("gemma_pref")
    old = logger.level
    logger.setLevel(level)
    try:
        emb = gp.GemmaEmbedder(tiny_gemma, max_length=16, show_progress_bar=show)
        emb.fit_transform(["one text", "another text", "a third"])
    finally:
        logger.setLevel(old)
    out, err = capfd.readouterr()
    assert out == ""
    assert ("it/s" in err or "%|" in err) is expect_bar, err[-500:]
