"""The user cache, listed and cleaned: real ONNX exports, embedding caches and a
converted model's folder, beside a user's own files that are never removed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gemma_pref.backend.home_cache import find_entries, format_size, list_cache, remove_entries

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _du(path: Path) -> int:
    """Bytes on disk as GNU du counts them."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[0])


def _user_files(home: Path) -> dict[str, bytes]:
    return {
        "onnx/notes.txt": b"my notes",
        "onnx/my-export/model.onnx": b"not an export of gemma-pref's",
        "onnx/my-export/meta.json": b'{"name": "mine", "opset": 17}',
        "onnx/.export-running/model.onnx": b"an export being written",
        "models/my-model/config.json": b'{"model_type": "gemma2"}',
        "embeddings/README.md": b"what this folder is",
        "embeddings/0123456789abcdef01234567/meta.json": b'{"fingerprint": "ffff"}',
    }


@pytest.fixture(scope="module")
def template(tiny_gemma, arena_texts, tmp_path_factory):
    """A user cache filled by the library itself, and a user's files in it."""
    import gemma_pref as gp
    from gemma_pref.backend.default_model import _COMPLETE, DEMO_MODEL_NAME

    home = tmp_path_factory.mktemp("home-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMMA_PREF_HOME", str(home))
        emb = gp.GemmaEmbedder(
            tiny_gemma,
            max_length=64,
            dtype="float32",
            backend="onnxruntime",
            layer=1,
            cache_dir=home / "embeddings",
            memory_cache=False,
        )
        emb.fit_transform(list(arena_texts[:5]))
    (export,) = (home / "onnx").iterdir()
    # an 8-bit export beside it, quantized by ONNX Runtime from the float32 one
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = home / "onnx" / f"{export.name}-int8"
    int8.mkdir()
    quantize_dynamic(export / "model.onnx", int8 / "model.onnx", weight_type=QuantType.QInt8)
    quantization = {
        "method": "dynamic",
        "op_types": ["MatMul"],
        "weight_type": "int8",
        "per_channel": False,
        "reduce_range": True,
    }
    meta = {"source": export.name, "quantization": quantization, "onnxruntime": "1"}
    (int8 / "meta.json").write_text(json.dumps(meta))
    # the default model's folder, as its conversion leaves it
    model = home / "models" / DEMO_MODEL_NAME
    shutil.copytree(tiny_gemma, model)
    (model / _COMPLETE).write_text("ok\n")
    (home / "models" / f"{DEMO_MODEL_NAME}.lock").write_text("")
    for name, data in _user_files(home).items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(data)
    return home


@pytest.fixture
def home(template, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(template, home)
    monkeypatch.setenv("GEMMA_PREF_HOME", str(home))
    return home


def _own_keys(home: Path) -> dict[str, str]:
    (export,) = [p for p in (home / "onnx").iterdir() if len(p.name) == 24]
    (vectors,) = [
        p
        for p in (home / "embeddings").iterdir()
        if p.is_dir() and p.name != "0123456789abcdef01234567"
    ]
    return {
        "onnx": f"onnx/{export.name}",
        "int8": f"onnx/{export.name}-int8",
        "model": "models/gemma-3-270m-q4_k_m-bf16",
        "embeddings": f"embeddings/{vectors.name}",
    }


def test_list_shows_the_librarys_entries_and_their_size_on_disk(home, tiny_gemma):
    started = time.time()
    entries = {e.key: e for e in list_cache()}
    keys = _own_keys(home)
    assert {k for k, e in entries.items() if e.own} == set(keys.values())
    # a user's files and folders are listed as not gemma-pref's; a running
    # export's temporary folder and the conversion's lock file are not listed
    assert {k for k, e in entries.items() if not e.own} == {
        "onnx/notes.txt",
        "onnx/my-export",
        "models/my-model",
        "embeddings/README.md",
        "embeddings/0123456789abcdef01234567",
    }
    for e in entries.values():
        assert e.size == _du(e.path) > 0, e.key
    export, int8 = entries[keys["onnx"]], entries[keys["int8"]]
    assert export.head == "PoolingHead(mode='mean', layers=(1,))" and export.layers == (1,)
    assert export.quantization is None and len(export.model) == 64
    assert int8.quantization == "int8 (dynamic, reduce_range)" and int8.source == export.name
    # the checkpoint and head of the export it was made from
    assert (int8.model, int8.head, int8.layers) == (export.model, export.head, (1,))
    assert int8.what == (
        f"ONNX export, int8 (dynamic, reduce_range) of model {export.model[:12]}: "
        f"PoolingHead(mode='mean', layers=(1,)) (from {keys['onnx']})"
    )
    assert int8.size < export.size  # 8-bit weights
    vectors = entries[keys["embeddings"]]
    assert vectors.layers == (1,) and vectors.model == str(tiny_gemma)
    assert vectors.what.startswith("5 vectors: embeddings of ")
    model = entries[keys["model"]]
    assert model.what == "converted model (gemma2, float32)"
    assert all(e.created is not None and e.created <= started for e in entries.values() if e.own)
    assert [e.kind for e in list_cache("models")] == ["models", "models"]


def test_remove_deletes_only_the_librarys_entries(home):
    keys = _own_keys(home)
    before = {e.key: e.size for e in list_cache()}
    # a user's folder is refused, and nothing else of the same call is removed
    with pytest.raises(ValueError, match="'onnx/my-export' in the gemma-pref cache is not gemma"):
        remove_entries([keys["onnx"], "onnx/my-export"])
    assert {e.key for e in list_cache()} == set(before)
    with pytest.raises(ValueError, match="No entry 'onnx/nope' in the gemma-pref cache"):
        remove_entries(["onnx/nope"])
    # a name's prefix names an entry, if only one
    prefix = keys["onnx"][: len("onnx/") + 6]
    with pytest.raises(ValueError, match=f"'{prefix}' names 2 entries of the gemma-pref cache"):
        find_entries([prefix])
    assert [e.key for e in find_entries([keys["int8"][:-2]])] == [keys["int8"]]
    assert [e.key for e in find_entries([f"{keys['model']}/"])] == [keys["model"]]
    removed = remove_entries([keys["onnx"], keys["embeddings"], keys["onnx"]])
    assert [e.key for e in removed] == [keys["onnx"], keys["embeddings"]]
    assert [e.size for e in removed] == [before[keys["onnx"]], before[keys["embeddings"]]]
    after = {e.key for e in list_cache()}
    assert after == set(before) - {keys["onnx"], keys["embeddings"]}
    for name, data in _user_files(home).items():
        assert (home / name).read_bytes() == data, name
    # nothing hidden is left behind
    assert sorted(p.name for p in (home / "onnx").iterdir() if p.name.startswith(".")) == [
        ".export-running"
    ]


def test_an_interrupted_removal_is_listed_and_finished(home):
    keys = _own_keys(home)
    export = home / keys["onnx"]
    left = export.with_name(".gemma-pref-removing-" + export.name + "-0000")
    export.rename(left)
    (entry,) = [e for e in list_cache() if e.name == left.name]
    assert entry.own and entry.what == "left over from an interrupted removal"
    assert remove_entries([entry]) == [entry] and not left.exists()


def test_cli_lists_and_removes(home, capsys):
    from gemma_pref.cli import main

    keys = _own_keys(home)
    own = [e for e in list_cache() if e.own]
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"gemma-pref cache: {home}"
    total = sum(e.size for e in own)
    assert f"total: {format_size(total)} in 4 entries of gemma-pref's" in out
    for e in list_cache():
        row = next(line for line in out.splitlines() if line.startswith(e.key + " "))
        assert format_size(e.size) in row
        assert ("not gemma-pref's (never removed)" in row) == (not e.own)

    assert main(["cache", "list", "--kind", "onnx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {e["key"] for e in report["entries"] if e["own"]} == {keys["onnx"], keys["int8"]}
    assert report["total_size"] == sum(e.size for e in own if e.kind == "onnx")

    # --all without --yes, input not a terminal: refused, nothing removed
    assert main(["cache", "remove", "--kind", "onnx", "--all"]) == 1
    err = capsys.readouterr().err
    assert "--all would remove 2 entries" in err and "pass --yes" in err
    assert len(list_cache()) == 9
    # a KEY and --all together, or neither: a usage error
    for args in (["cache", "remove"], ["cache", "remove", "--all", keys["model"]]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
    assert "give the KEYs of the entries to remove, or --all" in capsys.readouterr().err
    # a user's file: refused by name
    assert main(["cache", "remove", "notes.txt"]) == 1
    assert "'onnx/notes.txt' in the gemma-pref cache is not gemma-pref's" in capsys.readouterr().err

    assert main(["cache", "remove", keys["model"]]) == 0
    out = capsys.readouterr().out
    model_size = next(e.size for e in own if e.key == keys["model"])
    assert f"removed {keys['model']} ({format_size(model_size)})" in out
    assert main(["cache", "remove", "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.count("removed ") == 3 and "kept 5 not gemma-pref's" in out
    assert [e.own for e in list_cache()] == [False] * 5
    for name, data in _user_files(home).items():
        assert (home / name).read_bytes() == data, name
    assert main(["cache", "remove", "--all"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_cli_asks_on_a_terminal(home, capsys, monkeypatch):
    from gemma_pref.cli import main

    primary, secondary = os.openpty()
    with os.fdopen(secondary, "r") as tty:
        monkeypatch.setattr(sys, "stdin", tty)
        os.write(primary, b"n\n")
        assert main(["cache", "remove", "--kind", "models", "--all"]) == 0
    os.close(primary)
    out = capsys.readouterr().out
    assert "Remove 1 entry" in out and "nothing removed" in out
    assert any(e.kind == "models" and e.own for e in list_cache())


def test_the_gemma_pref_command_lists_the_cache(home):
    r = subprocess.run(
        [sys.executable, "-m", "gemma_pref", "cache", "list", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ, GEMMA_PREF_HOME=str(home)),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_size"] == sum(e.size for e in list_cache() if e.own)
