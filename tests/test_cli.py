"""The gemma-pref command line, driven as a user would (subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def run(*args, cwd, home):
    env = dict(os.environ, GEMMA_PREF_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "gemma_pref", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # under the per-test limit: a hung run fails this test only
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory, arena):
    d = tmp_path_factory.mktemp("cli")
    arena.iloc[:90].to_csv(d / "train.csv", index=False)
    arena.iloc[90:120].drop(columns=["winner_model_a", "winner_model_b", "winner_tie"]).to_csv(
        d / "test.csv", index=False
    )
    return d


@pytest.fixture(scope="module")
def model_args(tiny_gemma):
    return ["--model", tiny_gemma, "--max-length", "64", "--dtype", "float32"]


@pytest.fixture(scope="module")
def fitted(work, model_args):
    home = work / "home"
    r = run(
        "fit",
        "--train",
        "train.csv",
        "-o",
        "pipe.joblib",
        *model_args,
        "--cache-dir",
        work / "cache",
        cwd=work,
        home=home,
    )
    assert r.returncode == 0, r.stderr
    return r


def _no_temp_files(d):
    return not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_fit_writes_pipeline_and_summary(work, fitted):
    import gemma_pref as gp

    model = gp.load(work / "pipe.joblib")
    # the default recipe: structure and pair embeddings, blended
    assert isinstance(model, gp.PreferenceBlendClassifier)
    assert model.formatter_.layout == "pair"
    assert set(model.weights_) == {"structure", "embedding"}
    assert "fit: 90 rows from train.csv" in fitted.stdout
    assert "rows/s" in fitted.stdout and "training-set log loss" in fitted.stdout
    assert list((work / "cache").rglob("*.emb"))  # the on-disk cache was used


def test_predict_writes_submission(work, fitted):
    r = run(
        "predict",
        "--pipeline",
        "pipe.joblib",
        "--test",
        "test.csv",
        "-o",
        "submission.csv",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    sub = pd.read_csv(work / "submission.csv")
    assert list(sub.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    assert len(sub) == 30
    assert sub["id"].tolist() == pd.read_csv(work / "test.csv")["id"].tolist()
    np.testing.assert_allclose(sub.iloc[:, 1:].sum(axis=1), 1.0, atol=1e-9)
    assert "predict: 30 rows" in r.stdout and "log loss" not in r.stdout
    assert _no_temp_files(work)


def test_predict_reports_log_loss_when_labels_exist(work, fitted):
    r = run(
        "predict",
        "--pipeline",
        "pipe.joblib",
        "--test",
        "train.csv",
        "-o",
        "sub_train.csv",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    assert "log loss" in r.stdout and len(pd.read_csv(work / "sub_train.csv")) == 90


def test_cv_prints_and_writes_json(work, model_args):
    r = run(
        "cv",
        "--train",
        "train.csv",
        "--folds",
        "3",
        "--iterations",
        "10",
        "-o",
        "cv.json",
        *model_args,
        "--no-cache",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((work / "cv.json").read_text())
    assert report["folds"] == 3 and report["rows"] == 90 and report["grouped_by_prompt"]
    assert len(report["per_fold"]) == 3
    assert 0 < report["log_loss"] < 5 and 0 <= report["accuracy"] <= 1
    assert f"cv log loss {report['log_loss']:.4f}" in r.stdout
    assert r.stdout.count("fold ") >= 3
    # the pairwise recipe's token budget: no text loses its answer to truncation
    assert "TruncationWarning" not in r.stderr
    # the closing line says what the embeddings ran on (float32 asked for: ONNX
    # Runtime on any CPU where the onnx extra is installed)
    from gemma_pref.backend import _onnx

    backend = "onnxruntime" if _onnx.available() else "torch"
    assert f"compute: {backend} float32 on cpu" in r.stdout.splitlines()[-1]
    for name in ("cv.reliability.png", "cv.confusion.png"):
        assert (work / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["plots"] == ["cv.reliability.png", "cv.confusion.png"]


def test_j_cv_says_once_that_truncation_left_pair_texts_the_same(work, tiny_gemma):
    # --no-budget at 32 tokens: long prompts leave both texts of a row the same
    # tokens in every fold's training rows and held-out rows; said once, at the end
    r = run(
        "cv", "--train", "train.csv", "--folds", "2", "--model", tiny_gemma,
        "--max-length", "32", "--dtype", "float32", "--no-budget", "--no-plots",
        "-o", "cv_trunc.json", "--no-cache", cwd=work, home=work / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("TruncationWarning") == 1, r.stderr
    message = r.stderr[r.stderr.index("TruncationWarning: ") :]
    assert re.match(
        r"TruncationWarning: GemmaEmbedder keeps the first max_length=32 tokens of each "
        r"text: in \d+ of 45 rows of two texts \(rows \d+, ",  # fold 0's training rows
        message,
    ), message
    assert "the command line's --budget" in message
    calls = re.search(r"\(Said by (\d+) embedding calls of this cross-validation", message)
    assert calls and 2 <= int(calls.group(1)) <= 4, message


def test_cv_seed_recipe_with_catboost(work, model_args):
    r = run(
        "cv",
        "--train",
        "train.csv",
        "--folds",
        "2",
        "--recipe",
        "seed",
        "--iterations",
        "10",
        "--no-plots",
        "-o",
        "cv_seed.json",
        *model_args,
        "--no-cache",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((work / "cv_seed.json").read_text())
    assert report["settings"]["recipe"] == "seed"
    assert report["settings"]["classifier"] == "auto" and len(report["per_fold"]) == 2


def test_embed_bundled_sample_by_default(work, model_args):
    r = run(
        "embed",
        "-o",
        "emb.npy",
        *model_args,
        "--max-length",
        "32",
        "--no-cache",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    X = np.load(work / "emb.npy")
    # pairwise: the prompt with answer A, then with answer B, side by side
    assert X.shape == (715, 128) and X.dtype == np.float32
    assert "bundled arena sample" in r.stdout
    r = run(
        "embed",
        "-o",
        "emb_seed.npy",
        "--recipe",
        "seed",
        *model_args,
        "--max-length",
        "32",
        "--no-cache",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    assert np.load(work / "emb_seed.npy").shape == (715, 64)


@pytest.mark.parametrize(("flag", "layer"), [("1", 1), ("0,-1", [0, -1])])
def test_embed_layer_is_the_librarys(work, model_args, tiny_gemma, flag, layer):
    import gemma_pref as gp
    from gemma_pref.pipeline import make_recipe_formatter

    out = f"emb_layer_{flag.replace(',', '_')}.npy"
    r = run(
        "embed", "-o", out, *model_args, "--layer", flag, "--no-cache", cwd=work, home=work / "home"
    )
    assert r.returncode == 0, r.stderr
    rows = gp.load_arena_sample()
    # the pairwise recipe's texts: each part with its share of the 64 tokens
    texts = make_recipe_formatter("pairwise", str(tiny_gemma), max_length=64).fit_transform(rows)
    expected = gp.GemmaEmbedder(
        tiny_gemma, max_length=64, dtype="float32", layer=layer
    ).fit_transform(texts)
    np.testing.assert_allclose(np.load(work / out), expected, rtol=1e-3, atol=1e-4)
    # the closing line names the hidden states pooled, and what ran
    indices = ",".join(
        map(str, sorted(i % 3 for i in ([layer] if isinstance(layer, int) else layer)))
    )
    assert f"hidden states {indices} pooled" in r.stdout.splitlines()[-1]


def test_budget_shares_the_tokens_as_the_library_does(work, model_args, tiny_gemma):
    from transformers import AutoTokenizer

    import gemma_pref as gp
    from gemma_pref.pipeline import make_recipe_formatter
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    r = run(
        "embed", "-o", "emb_budget.npy", *model_args, "--max-length", "32", "--budget",
        "--no-cache", cwd=work, home=work / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = gp.load_arena_sample()
    formatter = make_recipe_formatter("pairwise", tiny_gemma, max_length=32, budget=True)
    texts = formatter.fit_transform(rows)
    embedder = gp.GemmaEmbedder(
        tiny_gemma, max_length=32, dtype="float32", layer=PAIRWISE_DEFAULTS["layer"]
    )
    np.testing.assert_allclose(
        np.load(work / "emb_budget.npy"), embedder.fit_transform(texts), rtol=1e-3, atol=1e-4
    )
    # every text fits the 32 tokens, and keeps its answer where the prompt is long
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma)
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts.ravel()]
    assert max(lengths) <= 32
    plain = make_recipe_formatter("pairwise").fit_transform(rows)
    cut = [
        tokenizer.decode(tokenizer(t, max_length=32, truncation=True)["input_ids"])
        for t in plain[:, 0]
    ]
    lost = sum("<start_of_turn>model" not in c for c in cut)
    kept = sum("<start_of_turn>model" in t for t in texts[:, 0])
    assert lost > 0 and kept == len(rows)  # without --budget a long prompt crowds it out

    # fit stores the budgeted formatter in the pipeline predict loads
    r = run(
        "fit", "--train", "train.csv", "-o", "pipe_budget.joblib", *model_args, "--budget",
        "--no-cache", cwd=work, home=work / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    params = gp.load(work / "pipe_budget.joblib").get_params()
    formatters = [v for v in params.values() if isinstance(v, gp.ArenaTextFormatter)]
    assert [(f.max_tokens, f.tokenizer) for f in formatters] == [(64, str(tiny_gemma))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--train", "missing.csv"], "preference file not found: 'missing.csv'"),
        (["fit", "--train", "test.csv"], "training file 'test.csv' has no labels"),
        (["fit", "--train", "train.txt"], "cannot read 'train.txt': expected a file ending in"),
        (
            ["cv", "--train", "other.csv", "-o", "cv9.json"],
            "read_preferences cannot tell the format of rows with columns ['question', 'answer']",
        ),
        (
            [
                "predict",
                "--pipeline",
                "pipe.joblib",
                "--test",
                "test.csv",
                "--sample-submission",
                "sample_bad.csv",
                "-o",
                "s9.csv",
            ],
            "id 'nope' of the sample submission 'sample_bad.csv' is not in the test rows",
        ),
        (  # case h: duplicate ids are refused before the pipeline predicts
            ["predict", "--pipeline", "pipe.joblib", "--test", "test_dup.csv", "-o", "s8.csv"],
            "the test rows: id 7 appears twice (rows 0 and 2): a submission needs one row per id",
        ),
        (
            [
                "predict",
                "--pipeline",
                "pipe.joblib",
                "--test",
                "test.csv",
                "--sample-submission",
                "sample_dup.csv",
                "-o",
                "s7.csv",
            ],
            "the sample submission 'sample_dup.csv': id 'x' appears twice (rows 0 and 1)",
        ),
        (
            ["predict", "--pipeline", "nope.joblib", "-o", "s2.csv"],
            "pipeline file 'nope.joblib' not found",
        ),
        (
            ["embed", "--model", "no-such-dir", "-o", "e2.npy"],
            "model_name_or_path='no-such-dir' is not in the local Hugging Face cache and "
            "HF_HUB_OFFLINE=1 forbids downloading it",
        ),
        (
            ["embed", "--model", "google/gemma-2-9b", "-o", "e5.npy"],
            "'google/gemma-2-9b' is not in the local Hugging Face cache",
        ),
        (["embed", "--model", "empty-model", "-o", "e3.npy"], "has no config.json"),
        (
            ["embed", "--input", "bad.csv", "--model", "TINY", "-o", "e4.npy"],
            "response_a at row 0 (id 1): expected a JSON list of strings",
        ),
        (["cv", "--folds", "1", "--model", "TINY", "-o", "cv2.json"], "--folds must be at least 2"),
        (
            ["fit", "--C", "0", "--model", "TINY", "-o", "p2.joblib"],
            "--C must be positive, got 0.0",
        ),
        (
            ["embed", "--model", "TINY", "--layer", "7", "-o", "e6.npy"],
            "The 'layer' parameter of GemmaEmbedder must be an index in [-3, 2]",
        ),
        (
            ["cv", "--recipe", "structure", "--budget", "-o", "cv3.json"],
            "--budget shares the model's tokens between the prompt and the answers",
        ),
        (
            ["fit", "--recipe", "finetune", "--layer", "1", "--model", "TINY", "-o", "p3.joblib"],
            "--layer applies to the embedding recipes (pairwise, seed)",
        ),
    ],
)
def test_errors_print_one_line_and_write_nothing(work, tiny_gemma, fitted, args, message):
    (work / "empty-model").mkdir(exist_ok=True)
    pd.DataFrame(
        {"id": [1], "prompt": ['["p"]'], "response_a": ['["not json'], "response_b": ['["b"]']}
    ).to_csv(work / "bad.csv", index=False)
    (work / "train.txt").write_text("id,prompt\n")
    pd.DataFrame({"question": ["q"], "answer": ["a"]}).to_csv(work / "other.csv", index=False)
    pd.DataFrame({"id": ["nope"], "winner": ["model_a"]}).to_csv(
        work / "sample_bad.csv", index=False
    )
    test = pd.read_csv(work / "test.csv").head(3)
    test.assign(id=[7, 8, 7]).to_csv(work / "test_dup.csv", index=False)
    pd.DataFrame({"id": ["x", "x"], "winner": ["model_a"] * 2}).to_csv(
        work / "sample_dup.csv", index=False
    )
    args = [str(tiny_gemma) if a == "TINY" else a for a in args]
    before = set(os.listdir(work))
    r = run(*args, "--overwrite", cwd=work, home=work / "home")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("gemma-pref: error:")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert set(os.listdir(work)) == before  # no output, no temp file


def test_existing_output_is_not_overwritten(work, fitted, model_args):
    (work / "keep.npy").write_bytes(b"precious")
    r = run("embed", "-o", "keep.npy", *model_args, cwd=work, home=work / "home")
    assert r.returncode == 1 and "pass --overwrite" in r.stderr
    assert (work / "keep.npy").read_bytes() == b"precious"


def test_structure_recipe_needs_no_model_and_refuses_classifier_flags(work):
    r = run(
        "cv",
        "--recipe",
        "structure",
        "--folds",
        "3",
        "-o",
        "structure.json",
        "--no-plots",
        "--train",
        "train.csv",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((work / "structure.json").read_text())
    assert report["settings"]["recipe"] == "structure" and np.isfinite(report["log_loss"])
    assert "compute:" not in r.stdout  # no model ran
    for flags in (["--classifier", "catboost"], ["--C", "0.1"]):
        r = run(
            "fit", "--recipe", "pairwise", *flags, "-o", "x.joblib", cwd=work, home=work / "home"
        )
        assert r.returncode == 1 and "apply to --recipe embedding and seed" in r.stderr


def test_version_and_choices_follow_the_library(work):
    import gemma_pref as gp
    from gemma_pref.pipeline import RECIPES
    from gemma_pref.pipeline.recipes import CLASSIFIER_KINDS

    r = run("--version", cwd=work, home=work / "home")
    assert r.returncode == 0 and r.stdout.strip() == f"gemma-pref {gp.__version__}"
    for command in ("fit", "cv", "embed"):
        r = run(command, "--help", cwd=work, home=work / "home")
        assert r.returncode == 0
        # the recipes offered are the library's, in its order
        assert "{" + ",".join(RECIPES) + "}" in r.stdout, r.stdout
    r = run("cv", "--help", cwd=work, home=work / "home")
    assert "{" + ",".join(CLASSIFIER_KINDS) + "}" in r.stdout
    r = run("fit", "--recipe", "no-such-recipe", cwd=work, home=work / "home")
    assert r.returncode == 2 and "invalid choice: 'no-such-recipe'" in r.stderr


def test_finetune_recipe_fit_predict_cv(work, tiny_gemma):
    args = [
        "--model",
        tiny_gemma,
        "--max-length",
        "64",
        "--dtype",
        "float32",
        "--recipe",
        "finetune",
        "--lora-r",
        "4",
        "--devices",
        "cpu",
    ]
    r = run("fit", "--train", "train.csv", "-o", "ft.joblib", *args, cwd=work, home=work / "home")
    assert r.returncode == 0, r.stderr
    import gemma_pref as gp

    pipe = gp.load(work / "ft.joblib")
    assert list(pipe.named_steps) == ["formatter", "classifier"]
    clf = pipe["classifier"]
    assert isinstance(clf, gp.GemmaPreferenceClassifier) and clf.lora_r == 4
    assert clf.n_steps_ == 12  # 90 rows in batches of 4, 2 batches per step
    r = run(
        "predict",
        "--pipeline",
        "ft.joblib",
        "--test",
        "test.csv",
        "-o",
        "ft.csv",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    sub = pd.read_csv(work / "ft.csv")
    assert len(sub) == 30 and np.allclose(sub.iloc[:, 1:].sum(axis=1), 1.0)
    r = run(
        "cv",
        "--train",
        "train.csv",
        "--folds",
        "2",
        "--no-plots",
        "-o",
        "ft_cv.json",
        "--swap-augment",
        *args,
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((work / "ft_cv.json").read_text())
    assert report["settings"]["recipe"] == "finetune" and report["settings"]["swap_augment"]
    assert len(report["per_fold"]) == 2 and 0 < report["log_loss"] < 3


def test_wsdm_parquet_cv_fit_and_the_wsdm_submission(work, model_args, arena):
    """The WSDM Cup path: train on the Parquet (two classes), cv names accuracy,
    predict writes id,winner in the order of the sample submission."""
    from gemma_pref.data import parse_turns

    rows = arena[arena["winner_tie"] == 0].iloc[:120]
    one = {c: [parse_turns(x)[-1] for x in rows[c]] for c in ("prompt", "response_a", "response_b")}
    wsdm = pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            **one,
            "winner": np.where(rows["winner_model_a"] == 1, "model_a", "model_b"),
            "model_a": rows["model_a"].to_numpy(),
            "model_b": rows["model_b"].to_numpy(),
            "language": "English",
        }
    )
    wsdm.iloc[:90].to_parquet(work / "wsdm_train.parquet", index=False)
    wsdm.iloc[90:].drop(columns=["winner"]).to_parquet(work / "wsdm_test.parquet", index=False)
    sample = pd.DataFrame({"id": wsdm["id"].iloc[90:][::-1], "winner": "model_a"})
    sample.to_csv(work / "wsdm_sample.csv", index=False)
    home = work / "home"
    r = run(
        "cv",
        "--train",
        "wsdm_train.parquet",
        "--folds",
        "2",
        "-o",
        "wsdm_cv.json",
        *model_args,
        "--no-cache",
        cwd=work,
        home=home,
    )
    assert r.returncode == 0, r.stderr
    assert "cv: 90 rows from wsdm_train.parquet (wsdm format)" in r.stdout
    assert re.search(r"cv log loss \d\.\d{4} \+/- \d\.\d{4}, accuracy \d\.\d{3}", r.stdout)
    assert "two classes (model_a, model_b; no tie): the WSDM Cup 2025 scores accuracy" in r.stdout
    report = json.loads((work / "wsdm_cv.json").read_text())
    assert report["classes"] == [0, 1] and report["competition_metric"].startswith("accuracy")
    assert (work / "wsdm_cv.confusion.png").stat().st_size > 0
    r = run(
        "fit",
        "--train",
        "wsdm_train.parquet",
        "-o",
        "wsdm.joblib",
        *model_args,
        "--no-cache",
        cwd=work,
        home=home,
    )
    assert r.returncode == 0, r.stderr
    r = run(
        "predict",
        "--pipeline",
        "wsdm.joblib",
        "--test",
        "wsdm_test.parquet",
        "--sample-submission",
        "wsdm_sample.csv",
        "-o",
        "wsdm_submission.csv",
        cwd=work,
        home=home,
    )
    assert r.returncode == 0, r.stderr
    assert "wsdm_submission.csv (WSDM format: id,winner)" in r.stdout
    sub = pd.read_csv(work / "wsdm_submission.csv", dtype={"id": str})
    assert sub.columns.tolist() == ["id", "winner"]
    assert sub["id"].tolist() == sample["id"].tolist()  # the sample's order
    assert set(sub["winner"]) <= {"model_a", "model_b"}
    r = run(
        "predict",
        "--pipeline",
        "wsdm.joblib",
        "--test",
        "wsdm_test.parquet",
        "--submission-format",
        "lmsys",
        "-o",
        "wsdm_lmsys.csv",
        cwd=work,
        home=home,
    )
    assert r.returncode == 1 and "cannot write the LMSYS submission's tie" in r.stderr
    assert not (work / "wsdm_lmsys.csv").exists()


def test_predict_overrides_the_model_step_of_a_wrapped_pipeline(work, tiny_gemma):
    """A pipeline fitted with one device in bfloat16 (inside SwapABClassifier)
    predicts on two replicas in float32 when asked, and as fitted when not."""
    import gemma_pref as gp

    fit_args = ["--model", tiny_gemma, "--max-length", "48", "--swap-augment"]
    fit_args += ["--recipe", "embedding"]  # the embeddings always count (no blend weight)
    fit_args += ["--dtype", "bfloat16", "--devices", "cpu", "--backend", "torch", "--no-cache"]
    r = run(
        "fit",
        "--train",
        "train.csv",
        "-o",
        "wrapped.joblib",
        *fit_args,
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    saved = (work / "wrapped.joblib").read_bytes()
    assert isinstance(gp.load(work / "wrapped.joblib"), gp.SwapABClassifier)
    common = ["predict", "--pipeline", "wrapped.joblib", "--test", "test.csv", "--overwrite"]
    r = run(*common, "-o", "as_fitted.csv", cwd=work, home=work / "home")
    assert r.returncode == 0, r.stderr
    assert "compute: torch bfloat16 on cpu (asked for)" in r.stdout.splitlines()[-1]
    r = run(
        *common,
        "-o",
        "two.csv",
        "--devices",
        "cpu,cpu",
        "--dtype",
        "float32",
        "--batch-size",
        "4",
        cwd=work,
        home=work / "home",
    )
    assert r.returncode == 0, r.stderr
    assert "compute: torch float32 on cpu,cpu (asked for)" in r.stdout.splitlines()[-1]
    sub = pd.read_csv(work / "two.csv")
    proba = sub[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy()
    assert len(sub) == 30 and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # bfloat16 and float32 embeddings differ a little: so do the probabilities
    fitted = pd.read_csv(work / "as_fitted.csv")[list(sub.columns[1:])].to_numpy()
    assert 0 < np.abs(proba - fitted).max() < 0.1
    assert (work / "wrapped.joblib").read_bytes() == saved  # the file is not changed
    r = run(*common, "-o", "zero_batch.csv", "--batch-size", "0", cwd=work, home=work / "home")
    assert r.returncode == 1 and "'batch_size' parameter of GemmaEmbedder" in r.stderr
    assert not (work / "zero_batch.csv").exists()


def test_g_overwrite_replaces_only_gemma_prefs_own_outputs(work, fitted, capsys):
    """Case g: --overwrite never replaces a user's file or the command's input."""
    from gemma_pref.cli import main

    predict = ["-q", "predict", "--pipeline", "pipe.joblib", "--overwrite", "--test"]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        train_before = (work / "train.csv").read_bytes()
        # the output is the input: refused, whatever the flags
        assert main([*predict, "train.csv", "-o", "train.csv"]) == 1
        assert "is the command's input" in capsys.readouterr().err
        # a user's CSV that is not a submission: refused even with --overwrite
        (work / "notes.csv").write_text("name,score\nann,3\n")
        assert main([*predict, "test.csv", "-o", "notes.csv"]) == 1
        err = capsys.readouterr().err
        assert "is not a submission gemma-pref wrote" in err, err
        assert (work / "notes.csv").read_text() == "name,score\nann,3\n"
        # its own submission is replaced
        assert main([*predict, "test.csv", "-o", "sub-g.csv"]) == 0
        assert main([*predict, "test.csv", "-o", "sub-g.csv"]) == 0
        # a pipeline file: only one gemma_pref.save wrote
        fit = ["-q", "fit", "--recipe", "structure", "--train", "train.csv", "--overwrite"]
        assert main([*fit, "-o", "notes.csv"]) == 1
        assert "is not a pipeline file gemma-pref wrote" in capsys.readouterr().err
        assert main([*fit, "-o", "pipe-g.joblib"]) == 0 and main([*fit, "-o", "pipe-g.joblib"]) == 0
        # a cv report and its plots: its own are replaced, a user's JSON or image is not
        cv = ["-q", "cv", "--recipe", "structure", "--train", "train.csv", "--folds", "2"]
        assert main([*cv, "-o", "cv-g.json", "--overwrite"]) == 0
        assert main([*cv, "-o", "cv-g.json", "--overwrite"]) == 0
        (work / "settings.json").write_text('{"lr": 0.1}')
        assert main([*cv, "-o", "settings.json", "--overwrite", "--no-plots"]) == 1
        assert "is not a cv report gemma-pref wrote" in capsys.readouterr().err
        (work / "cv-g.reliability.png").write_text("a user's notes")
        assert main([*cv, "-o", "cv-g.json", "--overwrite"]) == 1
        assert "'cv-g.reliability.png' exists and is not a PNG image" in capsys.readouterr().err
        assert (work / "settings.json").read_text() == '{"lr": 0.1}'
        assert (work / "cv-g.reliability.png").read_text() == "a user's notes"
        assert (work / "train.csv").read_bytes() == train_before
    finally:
        os.chdir(cwd)
