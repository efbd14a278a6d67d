"""Ray Data: embedding and prediction with a pool of actors, on a local Ray.

One local Ray for the module, on loopback, with 4 logical CPUs: the actors
reserve one each, so with two of them the read and write tasks still find CPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from _optional import require

import gemma_pref as gp
from gemma_pref.distributed import (
    SUCCESS_FILE,
    CheckpointMissingError,
    actor_devices,
    embed_dataset,
    predict_dataset,
    read_arena_dataset,
    write_parquet,
)
from gemma_pref.distributed._inference import CRASH_ONCE_ENV

ray = require("ray", "ray")

EMBEDDER_DEFAULTS = {"max_length": 48}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rows(arena):
    """40 arena rows without labels."""
    return arena.iloc[:40].drop(columns=["winner_model_a", "winner_model_b", "winner_tie"])


def _by_id(frame, ids, column):
    """``column`` of ``frame`` in the order of ``ids``; every id exactly once."""
    assert sorted(frame["id"].tolist()) == sorted(ids.tolist())
    return frame.set_index("id").loc[ids, column]


@pytest.mark.parametrize("replicas,blocks,batch", [(1, 1, None), (2, 5, 7)])
def test_embed_dataset_equals_the_in_process_embedder(make_embedder, rows, replicas, blocks, batch):
    embedder = make_embedder()
    formatter = gp.ArenaTextFormatter(layout="pair")
    # 48 tokens without a budget: long prompts leave both texts the same, said here
    with pytest.warns(gp.exceptions.TruncationWarning, match="max_length=48 tokens"):
        expected = embedder.transform(formatter.fit_transform(rows))
    ds = ray.data.from_pandas(rows).repartition(blocks)
    out = embed_dataset(
        ds, embedder, formatter=formatter, num_replicas=replicas, batch_size=batch
    ).to_pandas()
    got = np.stack(_by_id(out, rows["id"], "embedding").to_numpy())
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_embed_dataset_of_a_text_column(make_embedder, arena_texts, rows):
    embedder = make_embedder()
    texts = pd.DataFrame({"key": np.arange(25) * 3, "body": list(arena_texts[:25])})
    out = embed_dataset(
        ray.data.from_pandas(texts), embedder, text_column="body", id_column="key", batch_size=4
    ).to_pandas()
    assert sorted(out["key"]) == sorted(texts["key"])
    got = np.stack(out.set_index("key").loc[texts["key"], "embedding"].to_numpy())
    np.testing.assert_allclose(got, embedder.transform(texts["body"]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="no 'text' column"):
        embed_dataset(ray.data.from_pandas(texts), embedder, id_column="key").take_all()


@pytest.fixture(scope="module")
def csv_shards(arena, tmp_path_factory):
    """Rows 60-99 of the sample as two CSV shards (cells with newlines)."""
    folder = tmp_path_factory.mktemp("arena-csv")
    test = arena.iloc[60:100].drop(columns=["winner_model_a", "winner_model_b", "winner_tie"])
    test.iloc[:25].to_csv(folder / "part-0.csv", index=False)
    test.iloc[25:].to_csv(folder / "part-1.csv", index=False)
    return folder, test


@pytest.mark.parametrize("recipe", ["pairwise", "finetune"])
def test_predict_dataset_equals_the_pipeline(tiny_gemma, arena, csv_shards, tmp_path, recipe):
    folder, test = csv_shards
    params = {"max_length": 48, "dtype": "float32", "devices": "cpu"}
    if recipe == "finetune":
        params.update(lora_r=4, random_state=0)
    pipe = gp.make_preference_pipeline(tiny_gemma, recipe=recipe, **params)
    train = arena.iloc[:60]
    pipe.fit(train, gp.data.labels_from_winner(train))
    expected = pipe.predict_proba(test)

    out = predict_dataset(read_arena_dataset(folder), pipe, num_replicas=2, batch_size=9)
    summary = write_parquet(out, tmp_path / "pred")
    assert summary["rows"] == len(test)
    frame = pd.read_parquet(tmp_path / "pred")
    assert list(frame.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    got = _by_id(frame, test["id"], ["winner_model_a", "winner_model_b", "winner_tie"])
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-5, rtol=0)
    marker = json.loads((tmp_path / "pred" / SUCCESS_FILE).read_text())
    assert marker["rows"] == len(test)


def test_devices_resolve_against_what_the_actor_sees(make_embedder, tiny_gemma, arena, rows):
    """The Kaggle setting, devices=["cuda:0", "cuda:1"], in actors that see no
    GPU (this machine has none): each actor runs on its CPU instead of failing
    with "cuda:1 not visible"; a wrapped pipeline's model step too."""
    formatter = gp.ArenaTextFormatter(layout="pair")
    with pytest.warns(gp.exceptions.TruncationWarning, match="max_length=48 tokens"):
        expected = make_embedder().transform(formatter.fit_transform(rows))
    node_wide = make_embedder(devices=["cuda:0", "cuda:1"])
    with pytest.raises(ValueError, match="not visible"):
        node_wide.transform(["in this process, the devices are checked as given"])
    out = embed_dataset(
        ray.data.from_pandas(rows).repartition(4), node_wide, formatter=formatter, num_replicas=2
    ).to_pandas()
    got = np.stack(_by_id(out, rows["id"], "embedding").to_numpy())
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)

    pipe = gp.make_preference_pipeline(
        tiny_gemma, max_length=48, dtype="float32", devices="cpu", swap_augment=True
    )
    train = arena.iloc[:40]
    pipe.fit(train, gp.data.labels_from_winner(train))
    before = pipe.predict_proba(rows)
    gp.pipeline.set_model_params(pipe, devices=["cuda:0", "cuda:1"])
    out = predict_dataset(ray.data.from_pandas(rows), pipe, num_replicas=1).to_pandas()
    got = _by_id(out, rows["id"], ["winner_model_a", "winner_model_b", "winner_tie"])
    np.testing.assert_allclose(got.to_numpy(dtype=np.float64), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("devices", "visible", "expected"),
    [
        (["cuda:0", "cuda:1"], [0], ["cuda:0"]),  # one GPU per actor
        (["cuda:0", "cuda:1"], [], ["cpu"]),  # a CPU actor
        ("cuda:1", [0, 1], ["cuda:0", "cuda:1"]),  # an actor with two GPUs
        ("auto", [0], ["cuda:0"]),
        ("auto", [], ["cpu"]),
        (["cpu", "cpu"], [], ["cpu"]),  # one replica per actor
        ("cpu", [0], ["cpu"]),  # CPU asked for: kept
        ([], [0], []),  # not a device list: the estimator reports it
    ],
)
def test_actor_devices(devices, visible, expected):
    assert actor_devices(devices, visible) == expected


def test_an_actor_that_dies_is_replaced_and_the_output_is_complete(
    make_embedder, arena_texts, tmp_path, monkeypatch
):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    embedder = make_embedder()
    texts = pd.DataFrame({"id": np.arange(30), "text": list(arena_texts[:30])})
    out = embed_dataset(
        ray.data.from_pandas(texts).repartition(3), embedder, num_replicas=2, batch_size=5
    )
    write_parquet(out, tmp_path / "emb")
    assert marker.is_file(), "no actor crashed: the fault was not injected"
    frame = pd.read_parquet(tmp_path / "emb")
    got = np.stack(_by_id(frame, texts["id"], "embedding").to_numpy())
    np.testing.assert_allclose(got, embedder.transform(texts["text"]), atol=1e-5, rtol=0)


def test_a_bad_row_fails_the_job_naming_id_and_column(make_embedder, rows, tmp_path):
    bad = rows.copy()
    bad_id = bad["id"].iloc[17]
    bad.loc[bad.index[17], "response_b"] = '["not a JSON list'
    out = tmp_path / "emb"
    job = embed_dataset(
        ray.data.from_pandas(bad), make_embedder(), formatter=gp.ArenaTextFormatter(), batch_size=8
    )
    with pytest.raises(gp.exceptions.ArenaFormatError) as info:
        write_parquet(job, out)
    message = str(info.value)
    assert "response_b" in message and str(bad_id) in message
    # nothing is left that looks like an output, complete or not
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_checkpoint_names_the_path_and_the_node(tmp_path, arena_texts):
    missing = tmp_path / "not-on-this-node"
    embedder = gp.GemmaEmbedder(str(missing), max_length=48)
    texts = ray.data.from_pandas(pd.DataFrame({"id": [1, 2], "text": list(arena_texts[:2])}))
    with pytest.raises(CheckpointMissingError) as info:
        embed_dataset(texts, embedder).take_all()
    message = str(info.value)
    assert str(missing) in message and "Ray node" in message and "every node" in message.lower()


def test_write_parquet_never_mixes_or_loses_outputs(tmp_path):
    out = tmp_path / "out"
    write_parquet(ray.data.range(50, override_num_blocks=5), out)
    assert pd.read_parquet(out)["id"].tolist() == list(range(50))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_parquet(ray.data.range(3), out)
    summary = write_parquet(ray.data.range(7, override_num_blocks=1), out, overwrite=True)
    assert summary["rows"] == 7 and pd.read_parquet(out)["id"].tolist() == list(range(7))
    marker = json.loads((out / SUCCESS_FILE).read_text())
    assert marker["format"] == "gemma-pref-parquet" and len(marker["files"]) >= 1
    assert sorted(marker["files"]) == sorted(p.name for p in out.glob("*.parquet"))
    # a directory that is not ours is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="never replaced"):
        write_parquet(ray.data.range(3), mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    # case g: a user's dataset of Parquet files, even with a _SUCCESS of its own
    data = tmp_path / "my-dataset"
    data.mkdir()
    pd.DataFrame({"id": [1, 2]}).to_parquet(data / "part-0.parquet")
    (data / SUCCESS_FILE).write_text("")  # as Spark and Hadoop write it
    before = (data / "part-0.parquet").read_bytes()
    with pytest.raises(FileExistsError, match="no _SUCCESS of its own.*never replaced"):
        write_parquet(ray.data.range(3), data, overwrite=True)
    assert (data / "part-0.parquet").read_bytes() == before
    # our own output with a file added to it is not replaced either
    (out / "notes.txt").write_text("mine now")
    with pytest.raises(FileExistsError, match=r"also holds \['notes.txt'\]"):
        write_parquet(ray.data.range(3), out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "my-dataset", "out"]


def test_read_arena_dataset_csv_and_parquet(csv_shards, tmp_path):
    folder, test = csv_shards
    from_csv = read_arena_dataset(folder).to_pandas()
    assert sorted(from_csv["id"]) == sorted(test["id"])
    merged = from_csv.set_index("id").loc[test["id"]]
    assert merged["response_a"].tolist() == test["response_a"].tolist()  # newlines intact
    test.to_parquet(tmp_path / "rows.parquet")
    assert read_arena_dataset(tmp_path / "rows.parquet").count() == len(test)
    (tmp_path / "rows.csv").write_text("id\n1\n")
    with pytest.raises(ValueError, match="expected CSV"):
        read_arena_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_arena_dataset(tmp_path / "nowhere")


def test_ray_reads_every_cell_by_one_rule_as_the_in_process_reader(tmp_path, capsys):
    from test_reading_rule import LOOKALIKES, wsdm_frame

    from gemma_pref.cli import main

    plain = wsdm_frame(LOOKALIKES[:12], LOOKALIKES[11:])
    plain.to_csv(tmp_path / "plain.csv", index=False)
    plain.to_parquet(tmp_path / "plain.parquet", index=False)
    for name in ("plain.csv", "plain.parquet"):
        with warnings.catch_warnings():  # the CSV's empty field: a missing answer
            warnings.simplefilter("ignore", gp.exceptions.MissingCellsWarning)
            read = read_arena_dataset(tmp_path / name, format="wsdm").to_pandas()
        read = read.set_index("id").loc[plain["id"]]
        for column in ("prompt", "response_a", "response_b"):
            turns = [gp.text.formatting.parse_turns(c) for c in read[column]]
            written = plain[column].tolist()
            if name == "plain.csv":  # an empty CSV field is a missing answer: no turns
                written = [None if w == "" else w for w in written]
            assert turns == [[] if w is None else [w] for w in written], (name, column)
        # auto: the answers that look like JSON lists beside plain ones are refused
        with pytest.raises(gp.exceptions.ArenaFormatError, match="ambiguous text cells"):
            read_arena_dataset(tmp_path / name)
    # --format reaches the Ray reader: this file is not JSON lists
    code = main(
        [
            "-q",
            "predict",
            "--test",
            str(tmp_path / "plain.parquet"),
            "--engine",
            "ray",
            "--format",
            "lmsys",
            "--pipeline",
            str(tmp_path / "plain.csv"),  # never opened: the read fails first
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "expected a JSON list of strings" in err and "--cell-format text" in err
    # shards read otherwise than the first ones fail the job, naming a row
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    first = wsdm_frame(["one"] * 300, ["two"] * 300)  # more than the first batch
    first.to_csv(mixed / "part-0.csv", index=False)
    lists = wsdm_frame(['["x"]'], ['["y"]']).assign(prompt='["q"]', id="j0")
    lists.to_csv(mixed / "part-1.csv", index=False)
    with pytest.raises(
        gp.exceptions.ArenaFormatError,
        match=r"the rows from row 0 \(id 'j0'\) on read as the 'lmsys' format.*"
        "one rule must read the whole dataset",
    ):
        read_arena_dataset(mixed).materialize()


def test_bad_parameters(make_embedder):
    ds = ray.data.range(2)
    with pytest.raises(ValueError, match="num_replicas"):
        embed_dataset(ds, make_embedder(), num_replicas=0)
    with pytest.raises(ValueError, match="batch_size"):
        predict_dataset(ds, make_embedder(), batch_size=0)
    with pytest.raises(ValueError, match="num_cpus_per_replica"):
        embed_dataset(ds, make_embedder(), num_cpus_per_replica=-1)
    # a pool that takes every CPU would wait forever for its input: refused
    with pytest.raises(ValueError, match="leaving none to read"):
        embed_dataset(ds, make_embedder(), num_replicas=4)
    embed_dataset(ds, make_embedder(), num_replicas=4, num_cpus_per_replica=0.5)  # lazy: builds


def test_cli_embed_and_predict_on_ray(tiny_gemma, arena, csv_shards, tmp_path, capsys):
    from gemma_pref.cli import main

    folder, test = csv_shards
    model = ["--model", str(tiny_gemma), "--max-length", "48", "--dtype", "float32", "--no-cache"]
    out = tmp_path / "emb"
    assert (
        main(["-q", "embed", "--input", str(folder), "--engine", "ray", "-o", str(out), *model])
        == 0
    )
    frame = pd.read_parquet(out)
    assert sorted(frame["id"]) == sorted(test["id"]) and (out / SUCCESS_FILE).is_file()
    shards = len(json.loads((out / SUCCESS_FILE).read_text())["files"])
    assert f"wrote {shards} Parquet shard(s) and {SUCCESS_FILE}" in capsys.readouterr().out
    # a rerun without --overwrite is refused and leaves the output as it was
    before = sorted(p.name for p in out.iterdir())
    embed = ["-q", "embed", "--input", str(folder), "--engine", "ray", *model]
    assert main([*embed, "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
    # case g: with --overwrite, a file of the user's in it is refused before any work
    (out / "notes.txt").write_text("keep me")
    assert main([*embed, "-o", str(out), "--overwrite"]) == 1
    assert "holds files gemma-pref did not write (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "notes.txt"])
    # ... and so is the input folder itself
    assert main([*embed, "-o", str(folder), "--overwrite"]) == 1
    assert "is the command's input" in capsys.readouterr().err

    pipe_file = tmp_path / "pipe.joblib"
    train = tmp_path / "train.csv"
    arena.iloc[:60].to_csv(train, index=False)
    assert main(["-q", "fit", "--train", str(train), "-o", str(pipe_file), *model]) == 0
    pred = tmp_path / "pred"
    args = ["-q", "predict", "--pipeline", str(pipe_file), "--test", str(folder)]
    assert main([*args, "--engine", "ray", "--replicas", "2", "-o", str(pred)]) == 0
    got = _by_id(
        pd.read_parquet(pred), test["id"], ["winner_model_a", "winner_model_b", "winner_tie"]
    )
    expected = gp.load(pipe_file).predict_proba(test)
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-5, rtol=0)
    # a bad row: one line naming the column and the id, no output directory
    bad = test.copy()
    bad.loc[bad.index[3], "prompt"] = '["an unclosed list'  # JSON-looking, broken
    bad.to_csv(tmp_path / "bad.csv", index=False)
    bad_out = tmp_path / "bad-pred"
    code = main(
        [
            "-q",
            "predict",
            "--pipeline",
            str(pipe_file),
            "--test",
            str(tmp_path / "bad.csv"),
            "--engine",
            "ray",
            "-o",
            str(bad_out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "prompt" in err and str(bad["id"].iloc[3]) in err, err
    assert not bad_out.exists()


def test_import_needs_neither_ray_nor_torch_and_hints_the_extra():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import gemma_pref.distributed as d\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    d.read_arena_dataset('x.csv')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'gemma-pref[ray]'" in result.stdout
