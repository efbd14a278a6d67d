"""Files and names of gemma-pref 0.1 after the move to subpackages.

tests/data/release_0_1 holds files written by gemma-pref 0.1.0 (the layout with every module at
the top level): joblib pickles from ``gp.save``, ``save_safe`` folders, and the probabilities the
estimators gave when they were saved.
"""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import zlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

import gemma_pref as gp
from gemma_pref import _compat
from gemma_pref._ownership import JOBLIB_FORMAT
from gemma_pref.exceptions import VersionMismatchWarning

OLD = Path(__file__).parent / "data" / "release_0_1"
EXPECTED = json.loads((OLD / "expected.json").read_text())


def _test_rows():
    start, stop = EXPECTED["test_rows"]
    return gp.load_arena_sample().iloc[start:stop]


@pytest.mark.filterwarnings("ignore:gemma_pref.*module path of gemma-pref 0.1:FutureWarning")
@pytest.mark.parametrize("name", ["structure", "swap"])
def test_old_pickles_load_and_predict_as_they_did(name):
    with pytest.warns(VersionMismatchWarning, match="saved with gemma_pref 0.1.0"):
        model = gp.load(OLD / f"{name}.joblib")
    proba = model.predict_proba(_test_rows())
    np.testing.assert_allclose(proba, EXPECTED[name], rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:gemma_pref.*module path of gemma-pref 0.1:FutureWarning")
def test_old_pickles_of_pair_model_and_unfitted_recipe():
    with pytest.warns(VersionMismatchWarning):
        pair = gp.load(OLD / "pair.joblib")
    X = np.load(OLD / "pair_X.npy")
    np.testing.assert_allclose(pair.predict_proba(X), EXPECTED["pair"], rtol=0, atol=1e-12)
    with pytest.warns(VersionMismatchWarning):
        recipe = gp.load(OLD / "default_recipe_unfitted.joblib")
    # the classes are today's, at their new homes, with the parameters they were saved with
    assert type(recipe) is gp.PreferenceBlendClassifier
    params = {
        k: repr(v) for k, v in recipe.get_params(deep=True).items() if not hasattr(v, "get_params")
    }
    assert params == EXPECTED["recipe_params"]


@pytest.mark.parametrize("name", ["structure_safe", "pair_safe"])
def test_old_save_safe_folders_load(name):
    with pytest.warns(VersionMismatchWarning, match="0.1.0"):
        model = gp.load_safe(OLD / name)
    if name == "pair_safe":
        proba = model.predict_proba(np.load(OLD / "pair_X.npy"))
        np.testing.assert_allclose(proba, EXPECTED["pair"], rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(
            model.predict_proba(_test_rows()), EXPECTED["structure_safe"], rtol=0, atol=1e-12
        )


def test_plain_joblib_in_a_fresh_process_names_the_move():
    # joblib.load (no gemma_pref call first) finds the old path through the alias and says so
    code = (
        "import warnings, joblib; warnings.simplefilter('always')\n"
        f"obj = joblib.load({str(OLD / 'structure.joblib')!r})\n"
        "print(type(obj['estimator'][0]).__module__)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "gemma_pref.text.features"
    assert "gemma_pref.features is a module path of gemma-pref 0.1" in run.stderr
    assert "moved to gemma_pref.text.features" in run.stderr
    assert "save them again" in run.stderr


def test_every_alias_points_at_a_module_that_exists():
    for old, new in _compat.MOVED_MODULES.items():
        assert old.startswith("gemma_pref.") and new.startswith("gemma_pref.")
        module = importlib.import_module(new)  # the new home imports on its own
        assert module.__name__ == new
        first = old not in sys.modules  # the warning comes with an old path's first import
        expect = pytest.warns(FutureWarning, match=f"moved to {new}") if first else nullcontext()
        with expect:
            assert importlib.import_module(old) is module
        assert sys.modules[new].__spec__.name == new  # the alias left the real module alone


@pytest.mark.filterwarnings("ignore:gemma_pref.*module path of gemma-pref 0.1:FutureWarning")
@pytest.mark.parametrize(
    ("old", "name", "home"),
    [
        ("gemma_pref.formatting", "ArenaTextFormatter", "gemma_pref.text"),
        ("gemma_pref.formatting", "ChatRenderer", "gemma_pref.text._templates"),
        ("gemma_pref.formatting", "is_gemma_chat_template", "gemma_pref.text._templates"),
        ("gemma_pref.formatting", "parse_turns", "gemma_pref.data._cells"),
        ("gemma_pref.finetune", "GemmaPreferenceClassifier", "gemma_pref.models"),
        ("gemma_pref.finetune", "LogitsHead", "gemma_pref.models._adapter"),
        ("gemma_pref.embedding", "GemmaEmbedder", "gemma_pref.embedding.embedder"),
        ("gemma_pref.pipeline", "PromptGroupedPipeline", "gemma_pref.pipeline.recipes"),
        ("gemma_pref.pipeline", "make_catboost_classifier", "gemma_pref.pipeline.recipes"),
        ("gemma_pref.pipeline", "make_preference_pipeline", "gemma_pref.pipeline.build"),
        ("gemma_pref.evaluation", "CVReport", "gemma_pref.evaluation.cross_validation"),
    ],
)
def test_a_pickle_naming_an_old_module_path_finds_what_moved_out_of_it(old, name, home):
    # the split modules keep every class and function a pickle of 0.1's layout can name
    # (protocol 0's GLOBAL opcode: what pickle writes for a class or a function)
    found = pickle.loads(f"c{old}\n{name}\n.".encode())
    assert found is getattr(importlib.import_module(home), name)


@pytest.mark.filterwarnings("ignore:gemma_pref.*module path of gemma-pref 0.1:FutureWarning")
@pytest.mark.parametrize(
    ("answering", "name"),
    [
        (answering, name)
        for answering, names in _compat.MOVED_OUT.items()
        if answering != "gemma_pref"  # the top level's: test_moved_top_level_names_warn_and_resolve
        for name in names
    ],
)
def test_names_that_moved_on_from_an_old_module_warn_and_resolve(answering, name):
    # 0.1's gemma_pref.formatting held truncation_report, now in gemma_pref.text.truncation;
    # a module with no alias (gemma_pref.evaluation) answers 0.1's path of the same name
    old = {new: old for old, new in _compat.MOVED_MODULES.items()}.get(answering, answering)
    home = _compat.MOVED_OUT[answering][name]
    with pytest.warns(FutureWarning, match=rf"{answering}\.{name} moved to {home}\.{name}"):
        found = pickle.loads(f"c{old}\n{name}\n.".encode())
    assert found is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(importlib.import_module(answering), "no_such_name")


def test_moved_top_level_names_warn_and_resolve():
    for name, home in _compat.MOVED_NAMES.items():
        # `plots` was also a module: importing its old path binds the attribute (same object)
        first = f"gemma_pref.{name}" not in sys.modules
        match = rf"gemma_pref\.{name} moved to {home}\.{name}"
        with pytest.warns(FutureWarning, match=match) if first else nullcontext():
            value = getattr(gp, name)
        assert value is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        gp.no_such_name  # noqa: B018


class Placeholder:
    """Stands in for a class while a pickle is written, then renamed in its bytes."""


def _envelope_naming(module: str, name: str, version: str) -> bytes:
    """A gp.save file whose estimator is the class ``module.name`` (written by hand)."""

    env = {
        "format": JOBLIB_FORMAT,
        "format_version": 1,
        "versions": {"gemma_pref": version},
        "estimator": Placeholder,
    }
    raw = pickle.dumps(env, protocol=2)
    placeholder = f"c{__name__}\nPlaceholder\n".encode()
    assert placeholder in raw
    return zlib.compress(raw.replace(placeholder, f"c{module}\n{name}\n".encode()), 3)


def test_file_naming_what_this_version_lacks_gets_an_error_naming_its_version(tmp_path):
    path = tmp_path / "future.joblib"
    path.write_bytes(_envelope_naming("gemma_pref.quantum", "Classifier", "0.9.1"))
    with pytest.raises(ModuleNotFoundError) as info:
        gp.load(path)
    message = str(info.value)
    assert "was written by gemma-pref 0.9.1" in message
    assert "names gemma_pref.quantum" in message
    assert f"gemma-pref {gp.__version__} does not have" in message
    assert "pip install 'gemma-pref==0.9.1'" in message

    path.write_bytes(_envelope_naming("gemma_pref.data", "NoSuchReader", "0.0.3"))
    with pytest.raises(
        AttributeError, match=r"gemma-pref 0\.0\.3 and names gemma_pref\.data\.NoSuch"
    ):
        gp.load(path)
