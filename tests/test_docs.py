"""The code in README.md and docs/ runs, and the documentation site builds strictly.

Python blocks of a page run in order in one namespace, in a temporary directory.
Where a block needs a model it names the placeholder ``/models/gemma-2-9b`` (or
uses the default model); here both are the tiny random Gemma-2 checkpoint.

A line that is one ``print(...)`` call with a comment states what it prints: the
comment is compared with the whole printed text, each run of whitespace taken as
one space and ``...`` standing for any text, the spaces around it included (as
doctest's ELLIPSIS). Prose about a print goes on the line above it
(docs/contributing.md).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from _optional import require

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PLACEHOLDER = "/models/gemma-2-9b"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def output_matches(stated: str, printed: str) -> bool:
    """Whether ``printed`` is what the comment ``stated`` says, as the docs' rule reads."""
    parts = re.split(r"\s*\.\.\.\s*", " ".join(stated.split()))
    pattern = ".*".join(re.escape(part) for part in parts)
    return re.fullmatch(pattern, " ".join(printed.split()), re.S) is not None


def stated_prints(code: str) -> dict[int, tuple[str, str]]:
    """``{line number: (print call, stated output)}`` of the lines of ``code`` that
    are one ``print(...)`` call followed by a comment."""
    comments = {
        tok.start[0]: tok.string[1:].strip()
        for tok in tokenize.generate_tokens(io.StringIO(code).readline)
        if tok.type == tokenize.COMMENT
    }
    lines = code.splitlines()
    found = {}
    for node in ast.walk(ast.parse(code)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "print"
            and node.lineno == node.end_lineno
            and node.lineno in comments
        ):
            line = lines[node.lineno - 1].encode()  # the offsets count UTF-8 bytes
            if not line[: node.col_offset].strip():
                call = line[node.col_offset : node.end_col_offset].decode()
                found[node.lineno] = (call, comments[node.lineno])
    return found


@contextlib.contextmanager
def _prints(stated: str, where: str):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    printed = buffer.getvalue()
    sys.stdout.write(printed)
    if not output_matches(stated, printed):
        raise AssertionError(
            f"{where} states that it prints {stated!r}, but it printed {printed.rstrip()!r}."
        )


def with_output_checks(code: str, page: str, first_line: int = 1) -> str:
    """``code`` with each stated print run under a check of what it prints.

    The line becomes ``with _prints(stated, where): print(...)``, one line still:
    the line numbers of a traceback stay the block's. ``first_line``: the line
    of ``page`` that the block starts at, for the message.
    """
    lines = code.splitlines(keepends=True)
    for lineno, (call, stated) in stated_prints(code).items():
        line = lines[lineno - 1]
        indent = line[: len(line) - len(line.lstrip())]
        where = f"{page}, line {first_line + lineno - 1},"
        lines[lineno - 1] = f"{indent}with _prints({stated!r}, {where!r}): {call}\n"
    return "".join(lines)


@pytest.fixture
def tiny_as_default(tiny_gemma, tmp_path, monkeypatch):
    """Make the tiny checkpoint the default model, as if converted already."""
    from gemma_pref.backend.default_model import _COMPLETE, DEMO_MODEL_NAME

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
    namespace: dict = {"__name__": "__docs__", "_prints": _prints}
    blocks = python_blocks(page)
    text = page.read_text()
    first_lines = [text[: m.start(1)].count("\n") + 1 for m in BLOCK.finditer(text)]
    if any(re.search(r"^import ray\b", code, re.M) for code in blocks):
        require("ray", "ray")
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    for i, code in enumerate(blocks):
        code = code.replace(PLACEHOLDER, str(tiny_gemma))
        code = with_output_checks(code, str(page.relative_to(ROOT)), first_lines[i])
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
    """``gp.evaluation.plots`` and every name in ``__all__`` work after a bare ``import gemma_pref``.

    In one pytest process another test may have imported a submodule already, which
    would hide a page that relies on it; a new interpreter does not.
    """
    code = (
        "import gemma_pref as gp\n"
        "missing = [n for n in gp.__all__ if not hasattr(gp, n)]\n"
        "assert not missing, missing\n"
        "assert callable(gp.evaluation.plots.save_cv_plots)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_stated_print_is_compared_with_its_output():
    code = (
        "x = 2\n"
        "print(x + 1)  # 3\n"
        'print("a b", [1, 2, 3])  # a b [1, ...]\n'
        "print(x)\n"
        "if x:\n"
        "    print(x)  # 2\n"
        "y = [x]  # a comment on another line is prose\n"
        "# print(x)  # 5\n"
    )
    assert stated_prints(code) == {
        2: ("print(x + 1)", "3"),
        3: ('print("a b", [1, 2, 3])', "a b [1, ...]"),
        6: ("print(x)", "2"),
    }
    exec(with_output_checks(code, "page.md", 10), {"_prints": _prints})
    wrong = with_output_checks("x = 2\nprint(x + 1)  # 4\n", "page.md", 10)
    with pytest.raises(
        AssertionError,
        match=r"^page\.md, line 11, states that it prints '4', but it printed '3'\.$",
    ):
        exec(wrong, {"_prints": _prints})
    # whitespace runs are one space; ... is any text; the whole output is compared
    assert output_matches("(4, 3)", "(4, 3)\n")
    assert output_matches("id winner", "   id  winner\n")
    assert output_matches("ab ... yz", "ab\n  cd\nyz\n")
    assert output_matches("(id 'a1') ...", "(id 'a1'): cells") and output_matches("a ... b", "ab")
    assert output_matches("ab...", "abc")
    assert not output_matches("ab", "abc")
    assert not output_matches("True", "False")
