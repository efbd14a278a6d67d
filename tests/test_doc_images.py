"""The pictures of docs/img, their record and the numbers the docs state agree.

``python scripts/make_doc_images.py`` draws docs/img/cv.reliability.png and
docs/img/cv.confusion.png with the default ``gemma-pref cv`` and records the run
in docs/img/images.json, with each picture's size and SHA-256: a picture
regenerated without its record, or a record without its pictures, fails here, as
does a page that states another log loss than the run that drew the pictures.
No model runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
RECORD = IMG / "images.json"
GUIDE = ROOT / "docs" / "guide" / "cross-validation.md"
README = ROOT / "README.md"
IMAGES = ("cv.reliability.png", "cv.confusion.png")
PRINTED = re.compile(
    r"cv log loss (\d+\.\d+) \+/- (\d+\.\d+), accuracy (\d+\.\d+) \(class prior: log loss (\d+\.\d+)\)"
)


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(RECORD.read_text())


def flat(path: Path) -> str:
    """The text of ``path`` with every run of whitespace one space."""
    return " ".join(path.read_text().split())


def test_record_is_of_the_default_command(record):
    assert record["default"] is True
    assert record["command"] == "gemma-pref cv --output <tmp>/cv.json"
    assert set(record["images"]) == set(IMAGES)
    # the printed line in the record is one the command printed, and its numbers are it
    assert record["printed"]["line"] in record["stdout"]
    numbers = PRINTED.fullmatch(record["printed"]["line"]).groups()
    assert [float(n) for n in numbers] == [
        record["printed"][k]
        for k in ("log_loss", "log_loss_std", "accuracy", "class_prior_log_loss")
    ]
    assert record["wall_seconds"] > 0
    assert set(record["cpu"]["flags"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}


@pytest.mark.parametrize("name", IMAGES)
def test_picture_is_the_png_the_record_describes(record, name):
    data = (IMG / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    described = record["images"][name]
    assert (width, height, len(data)) == (
        described["width"],
        described["height"],
        described["bytes"],
    ), f"{name} is not the picture docs/img/images.json records: rerun scripts/make_doc_images.py"
    assert hashlib.sha256(data).hexdigest() == described["sha256"], (
        f"{name} is not the picture docs/img/images.json records: rerun scripts/make_doc_images.py"
    )
    assert b"IEND" in data[-12:], f"{name} is cut short"


def test_cross_validation_page_states_the_pictures_numbers(record):
    text = flat(GUIDE)
    for name in IMAGES:
        assert f"](../img/{name})" in text
    assert "python scripts/make_doc_images.py" in text
    assert "](../img/images.json)" in text
    printed = [float(m) for m in re.findall(r"cv log loss (\d+\.\d+)", text)]
    titled = [float(m) for m in re.findall(r"titles? (?:states?|reads?) log loss (\d+\.\d+)", text)]
    assert printed, "docs/guide/cross-validation.md states no 'cv log loss' of the pictures' run"
    assert set(printed) == {record["printed"]["log_loss"]}
    assert set(titled) <= {record["title"]["log_loss"]}


def test_readme_main_command_output_is_the_records(record):
    stated = PRINTED.findall(flat(README))
    assert stated, "README.md states no output of its main command"
    line = record["printed"]
    for numbers in stated:
        assert [float(n) for n in numbers] == [
            line["log_loss"],
            line["log_loss_std"],
            line["accuracy"],
            line["class_prior_log_loss"],
        ], "README.md states another output of gemma-pref cv than the run that drew docs/img"
