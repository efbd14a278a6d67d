"""The example scripts run end to end on the bundled sample with the tiny model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # under the per-test limit: a hung run fails this test only
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_cross_validate(tiny_gemma, tmp_path):
    out = run_example(
        "cross_validate.py",
        "--model",
        tiny_gemma,
        "--max-length",
        "64",
        "--folds",
        "3",
        cwd=tmp_path,
    )
    assert "3-fold CV grouped by prompt on 715 rows, recipe 'pairwise'" in out
    assert out.count("fold ") >= 3 and "class prior" in out


def test_custom_pipeline(tiny_gemma, tmp_path):
    out = run_example(
        "custom_pipeline.py",
        "--model",
        tiny_gemma,
        "--max-length",
        "64",
        "--folds",
        "3",
        cwd=tmp_path,
    )
    assert "over 3 folds" in out
    assert "reloaded predictions match: True" in out


def test_kaggle_submission_on_cpu(tiny_gemma, tmp_path, arena):
    train = arena.iloc[:100]
    test = arena.iloc[100:130].drop(columns=["winner_model_a", "winner_model_b", "winner_tie"])
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    sample = pd.DataFrame(
        {
            "id": test["id"].iloc[::-1],
            "winner_model_a": 1 / 3,
            "winner_model_b": 1 / 3,
            "winner_tie": 1 / 3,
        }
    )
    sample.to_csv(tmp_path / "sample_submission.csv", index=False)
    out = run_example(
        "kaggle_submission.py",
        "--train",
        "train.csv",
        "--test",
        "test.csv",
        "--sample-submission",
        "sample_submission.csv",
        "--model",
        tiny_gemma,
        "--devices",
        "cpu",
        "--quantization",
        "none",
        "--max-length",
        "64",
        "--iterations",
        "20",
        cwd=tmp_path,
    )
    assert "holdout log loss" in out
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert sub["id"].tolist() == sample["id"].tolist()  # sample submission's order
    assert list(sub.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    assert (sub.iloc[:, 1:].sum(axis=1) - 1).abs().max() < 1e-9


def _documented_flags(name):
    """The ``--flags`` of the commands that the script's docstring shows."""
    import ast
    import re

    doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text())) or ""
    commands = re.findall(rf"python (?:examples/)?{re.escape(name)}([^\n]*)", doc)
    return commands, {f for c in commands for f in re.findall(r"(--[a-z][a-z-]*)", c)}


@pytest.mark.parametrize(
    "name", ["cross_validate.py", "custom_pipeline.py", "kaggle_submission.py"]
)
def test_documented_usage_matches_the_script(name, tmp_path):
    commands, flags = _documented_flags(name)
    assert commands, f"{name}: its docstring shows no 'python {name}' command"
    help_text = run_example(name, "--help", cwd=tmp_path)
    offered = set(re.findall(r"(--[a-z][a-z-]*)", help_text))
    # every flag the docstring tells users to pass exists in the script
    assert flags <= offered, sorted(flags - offered)
