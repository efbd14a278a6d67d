"""An optional dependency the tests need is skipped only when it is not installed."""

from __future__ import annotations

import pytest
from _optional import require


def test_a_missing_package_skips_with_the_extra_to_install():
    with pytest.raises(pytest.skip.Exception, match=r"pip install 'gemma-pref\[demo\]'"):
        require("gemma_pref_no_such_package", "demo")


def test_an_installed_package_that_fails_to_import_fails(tmp_path, monkeypatch):
    # installed, but a package of its own is missing: importorskip would skip
    pkg = tmp_path / "gemma_pref_broken_extra"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import gemma_pref_its_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(pytest.skip.Exception):
        pytest.importorskip("gemma_pref_broken_extra")
    with pytest.raises(ModuleNotFoundError, match="gemma_pref_its_missing_dependency"):
        require("gemma_pref_broken_extra", "demo")


def test_an_installed_package_is_returned():
    assert require("json", "demo").__name__ == "json"
