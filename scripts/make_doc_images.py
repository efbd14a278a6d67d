"""Make the pictures of docs/img from the current default, and record how.

Runs the README's main cross-validation, ``gemma-pref cv`` with no flags (the
bundled sample, the default model of the ``demo`` extra, the default recipe), in
a temporary directory, then copies the reliability diagram and the confusion
matrix it draws into docs/img and writes docs/img/images.json: the command, the
date, the gemma-pref version, the printed log loss and accuracy, the log loss in
the pictures' titles, the CPU and its speed-relevant flags, the wall time, and
the size and SHA-256 of each picture (tests/test_doc_images.py checks that the
pictures, the record and the docs agree).

    python scripts/make_doc_images.py                  # about 3 to 6 minutes on 2 cores
    python scripts/make_doc_images.py --out /tmp/img   # somewhere else
    python scripts/make_doc_images.py -- --folds 3     # extra flags for gemma-pref cv

The command runs with this checkout first on PYTHONPATH, so the pictures are
those of the code beside this script, and with GEMMA_PREF_HOME in the temporary
directory, so it starts from nothing as a fresh install does: it converts the
default model and embeds every text itself (no vector from an older version's
run in the on-disk cache), its wall time includes that, and it writes nothing
outside the temporary directory. --user-cache uses the user's caches instead
(faster once they hold the model and the vectors). Nothing in the output folder
changes unless the command succeeds: the new files are written under temporary
names and then moved over the old ones.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "img"
RECORD = "images.json"
STEM = "cv"
IMAGES = (f"{STEM}.reliability.png", f"{STEM}.confusion.png")
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PRINTED = re.compile(
    r"cv log loss (?P<log_loss>\d+\.\d+) \+/- (?P<log_loss_std>\d+\.\d+), "
    r"accuracy (?P<accuracy>\d+\.\d+) \(class prior: log loss (?P<prior>\d+\.\d+)\)"
)
STDERR_TAIL = 40


class ImageError(RuntimeError):
    """The command failed or its outputs are not what the script expects."""


def png_size(path: Path) -> tuple[int, int]:
    """Width and height read from the IHDR chunk of the PNG file ``path``.

    Raises
    ------
    ImageError
        If ``path`` does not start with the PNG signature and an IHDR chunk.
    """
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ImageError(f"{path} is not a PNG file (no PNG signature and IHDR chunk).")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def cpu_info() -> dict[str, object]:
    """The CPU's model name, core count and speed-relevant flags (Linux /proc/cpuinfo)."""
    model: str | None = None
    flags: set[str] | None = None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = set(value.split())
    return {
        "model": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "flags": None if flags is None else {f: f in flags for f in SPEED_FLAGS},
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # no load average on this platform
        return None


def _tee(stream: IO[str], sink: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
        sink.write(line)
        sink.flush()


def run_cli(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[list[str], list[str], float]:
    """Run ``cmd``, echoing its output; return its stdout and stderr lines and wall time (s).

    Raises
    ------
    ImageError
        If the command exits with a non-zero status, with the tail of its stderr.
    """
    out: list[str] = []
    err: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(target=_tee, args=(proc.stdout, sys.stdout, out)),
            threading.Thread(target=_tee, args=(proc.stderr, sys.stderr, err)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = proc.wait()
    seconds = time.perf_counter() - start
    if status != 0:
        tail = "".join(err[-STDERR_TAIL:]).rstrip() or "(nothing on stderr)"
        raise ImageError(
            f"{shlex.join(cmd)} failed with exit status {status} after {seconds:.0f} s; "
            f"the pictures were not changed. The last lines of its stderr:\n{tail}"
        )
    return out, err, seconds


def package_version(env: dict[str, str]) -> str:
    """``gemma_pref.__version__`` as the interpreter that runs the command imports it."""
    return subprocess.run(
        [sys.executable, "-c", "import gemma_pref; print(gemma_pref.__version__)"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_images(out_dir: Path, extra: list[str], user_cache: bool = False) -> dict[str, object]:
    """Run ``gemma-pref cv`` and put its pictures and the record into ``out_dir``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    version = package_version(env)
    with tempfile.TemporaryDirectory(prefix="gemma-pref-doc-images-") as tmp_name:
        tmp = Path(tmp_name)
        if not user_cache:
            env["GEMMA_PREF_HOME"] = str(tmp / "home")
        args = ["cv", "--output", str(tmp / f"{STEM}.json"), *extra]
        cmd = [sys.executable, "-m", "gemma_pref", *args]
        print(f"running {shlex.join(cmd)}", flush=True)
        date = _dt.datetime.now(_dt.timezone.utc)
        load_before = _load_average()
        stdout, stderr, seconds = run_cli(cmd, cwd=tmp, env=env)
        load_after = _load_average()
        stdout = [line.rstrip("\n").replace(str(tmp), "<tmp>") for line in stdout]
        # the one-time costs (model conversion, ONNX export) are logged on stderr
        one_time = [
            line[line.index("One-time:") :].strip().replace(str(tmp), "<tmp>")
            for line in "".join(stderr).replace("\r", "\n").splitlines()
            if "One-time:" in line
        ]

        printed = next((m for m in map(PRINTED.search, stdout) if m), None)
        if printed is None:
            raise ImageError(
                "gemma-pref cv succeeded but printed no line 'cv log loss X +/- S, accuracy A "
                "(class prior: log loss P)'; the pictures were not changed. It printed:\n"
                + "\n".join(stdout)
            )
        report = json.loads((tmp / f"{STEM}.json").read_text())
        images = {}
        for name in IMAGES:
            path = tmp / name
            if not path.is_file():
                raise ImageError(
                    f"gemma-pref cv succeeded but wrote no {name}; the pictures were not changed."
                )
            width, height = png_size(path)
            data = path.read_bytes()
            images[name] = {
                "width": width,
                "height": height,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        record = {
            "command": shlex.join(["gemma-pref", *args]).replace(str(tmp), "<tmp>"),
            "default": not extra,
            "caches": "the user's" if user_cache else "empty (GEMMA_PREF_HOME=<tmp>/home)",
            "date": date.isoformat(timespec="seconds"),
            "gemma_pref_version": version,
            "python": platform.python_version(),
            "printed": {
                "line": printed.group(0),
                "log_loss": float(printed["log_loss"]),
                "log_loss_std": float(printed["log_loss_std"]),
                "accuracy": float(printed["accuracy"]),
                "class_prior_log_loss": float(printed["prior"]),
            },
            # the pictures' titles state the log loss of the out-of-fold
            # predictions pooled, not the mean of the folds' that is printed
            "title": {
                "log_loss": round(report["oof"]["log_loss"], 4),
                "accuracy": round(report["oof"]["accuracy"], 3),
            },
            "cpu": cpu_info(),
            "wall_seconds": round(seconds, 1),
            # the wall time is only comparable on idle cores: the load averages
            # (1, 5, 15 min) before and after the run say whether others ran beside it
            "load_average": {"before": load_before, "after": load_after},
            "one_time": one_time,
            "stdout": stdout,
            "images": images,
        }

        # every new file under a temporary name first, then each moved over the old one
        out_dir.mkdir(parents=True, exist_ok=True)
        staged = [(out_dir / f".{name}.part", out_dir / name) for name in (*IMAGES, RECORD)]
        try:
            for name, (part, _) in zip(IMAGES, staged):
                part.write_bytes((tmp / name).read_bytes())
            staged[-1][0].write_text(json.dumps(record, indent=2) + "\n")
            for part, target in staged:
                os.replace(part, target)
        finally:
            for part, _ in staged:
                part.unlink(missing_ok=True)
    return record


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description="Make docs/img's pictures with the default gemma-pref cv and record how.",
        epilog="Flags after -- go to gemma-pref cv (the record then says default: false).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of the pictures and of {RECORD} (default: docs/img of this checkout)",
    )
    parser.add_argument(
        "--user-cache",
        action="store_true",
        help="use the user's gemma-pref caches (converted model, embedding vectors) "
        "instead of empty ones in the temporary directory",
    )
    args = parser.parse_args(argv)
    try:
        record = make_images(args.out, extra, user_cache=args.user_cache)
    except ImageError as exc:
        print(f"make_doc_images: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {', '.join(IMAGES)} and {RECORD} in {args.out}: {record['printed']['line']} "
        f"({record['wall_seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
