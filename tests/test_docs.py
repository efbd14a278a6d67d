"""The code in README.md and docs/ runs, and the documentation site builds strictly.

Python blocks of a page run in order in one namespace, in a temporary directory.
Where a block needs a model it names the placeholder ``/models/gemma-2-9b`` (or
uses the default model); here both are the tiny random Gemma-2 checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _optional import require

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PLACEHOLDER = "/models/gemma-2-9b"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.fixture
def tiny_as_default(tiny_gemma, tmp_path, monkeypatch):
    """Make the tiny checkpoint the default model, as if converted already."""
    from gemma_pref.demo_model import _COMPLETE, DEMO_MODEL_NAME

    home = tmp_path / "home"
    target = home / "models" / DEMO_MODEL_NAME
    shutil.copytree(tiny_gemma, target)
    (target / _COMPLETE).write_text("ok\n")
    monkeypatch.setenv("GEMMA_PREF_HOME", str(home))
    return target


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_code_blocks_run(page, tiny_gemma, tiny_as_default, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "__docs__"}
    blocks = python_blocks(page)
    if any(re.search(r"^import ray\b", code, re.M) for code in blocks):
        require("ray", "ray")
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    for i, code in enumerate(blocks):
        code = code.replace(PLACEHOLDER, str(tiny_gemma))
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)


def test_placeholder_is_the_only_model_path():
    for page in PAGES:
        for code in python_blocks(page):
            for path in re.findall(r"['\"](/[^'\"]*models?/[^'\"]*)['\"]", code):
                assert path == PLACEHOLDER, (page, path)


def test_site_builds_in_strict_mode(tmp_path):
    # the [test] extra installs the [docs] extra: CI always builds the site
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,  # under the per-test limit: a hung run fails this test only
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def test_documented_modules_resolve_in_a_fresh_interpreter():
    """``gp.plots`` and every name in ``__all__`` work after a bare ``import gemma_pref``.

    In one pytest process another test may have imported a submodule already, which
    would hide a page that relies on it; a new interpreter does not.
    """
    code = (
        "import gemma_pref as gp\n"
        "missing = [n for n in gp.__all__ if not hasattr(gp, n)]\n"
        "assert not missing, missing\n"
        "assert callable(gp.plots.save_cv_plots)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
