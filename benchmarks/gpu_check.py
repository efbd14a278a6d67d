# SPDX-License-Identifier: Apache-2.0
"""Every GPU check of gemma-pref in one call, with one JSON + markdown summary.

Run through ``scripts/gpu_check.sh`` (at most 8 minutes on one GPU). In order
of what matters most, each step in its own process so that peak memory is clean:

1. ``pytest -m gpu``: the tests that need CUDA (fine-tuning in ``auto`` and
   float16, a real out-of-memory back-off on the tiny model).
2. A Gemma-2-9b checkpoint with random weights (``benchmarks/gpu.py``'s sizes).
3. Fine-tuning it in float16 without quantization: the T4 path (trainable
   weights in float32, loss scaling), then QLoRA 4-bit, bf16 and 8-bit
   (``benchmarks/finetune.py --gpu``'s child).
4. Embedding with it (``benchmarks/gpu.py``'s child): 4-bit, two 4-bit
   replicas on one GPU standing in for two GPUs, a real CUDA out-of-memory
   back-off (the memory capped at the weights plus 1 GiB), 8-bit, bf16, fp16.

Each configuration's peak memory is set against a T4's 15 GB. A step that
needs CUDA on a machine without it says ``skipped: no CUDA``; one that needs
bitsandbytes where it is missing says so; the steps that the time budget
leaves no room for say ``skipped: time budget``. The summary is rewritten
after every step and says ``complete: false`` until the last one ends.

    python benchmarks/gpu_check.py                        # a CUDA machine
    python benchmarks/gpu_check.py --tiny --device cpu    # smoke test, tiny sizes
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine_info, write_report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: A T4's memory, in GB (10^9 bytes), the figure Kaggle shows for each of its two.
T4_GB = 15.0
#: Seconds a step needs at the least to be started.
MIN_STEP_S = 20.0


def _cuda_facts(device: str) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"cuda": False, "why": "torch is not installed"}
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return {"cuda": False, "why": "no CUDA"}
    index = int(device.split(":")[1]) if ":" in device else 0
    major, minor = torch.cuda.get_device_capability(index)
    props = torch.cuda.get_device_properties(index)
    return {
        "cuda": True,
        "name": torch.cuda.get_device_name(index),
        "capability": f"{major}.{minor}",
        "bf16": major >= 8,
        "total_gib": props.total_memory / 2**30,
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
    }


def _steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The checks, most important first."""
    dev = args.device
    if args.tiny:
        emb = {"rows": 16, "max_length": 64, "batch_size": 8, "max_tokens": 4096}
        ft = {"rows": 16, "max_length": 64, "batch_size": 4}
    else:
        emb = {"rows": 128, "max_length": 512, "batch_size": 32, "max_tokens": 16384}
        ft = {"rows": 32, "max_length": 256, "batch_size": 4}
    oom = {"rows": 64, "max_length": 1024 if not args.tiny else 64, "batch_size": 64}
    oom["max_tokens"] = 65536
    steps: list[dict[str, Any]] = [{"name": "pytest -m gpu", "kind": "pytest"}]
    for q, dtype, label in (
        ("none", "float16", "fine-tune fp16 + loss scaler (the T4 path)"),
        ("4bit", "auto", "fine-tune QLoRA 4-bit"),
        ("none", "bfloat16", "fine-tune bf16"),
        ("8bit", "auto", "fine-tune 8-bit"),
    ):
        steps.append({"name": label, "kind": "finetune", "q": q, "dtype": dtype, **ft})
        if q == "none" and dtype == "float16":
            # right after the most important fine-tune: the embedding rows
            steps.append({"name": "embed 4-bit", "kind": "embed", "q": "4bit", "dtype": "auto"})
            steps[-1].update(emb, devices=dev)
            steps.append(
                {
                    "name": "embed 4-bit, two replicas on one GPU",
                    "kind": "embed",
                    "q": "4bit",
                    "dtype": "auto",
                    "devices": f"{dev},{dev}",
                    **emb,
                }
            )
            steps.append(
                {
                    "name": "embed 4-bit, real CUDA OOM back-off",
                    "kind": "embed",
                    "q": "4bit",
                    "dtype": "auto",
                    "devices": dev,
                    "needs_cuda": True,
                    "oom_headroom_gib": 1.0,
                    **oom,
                }
            )
    for q, dtype, label in (
        ("8bit", "auto", "embed 8-bit"),
        ("none", "bfloat16", "embed bf16"),
        ("none", "float16", "embed fp16"),
    ):
        steps.append(
            {"name": label, "kind": "embed", "q": q, "dtype": dtype, "devices": dev, **emb}
        )
    for step in steps:
        step.setdefault("devices", dev)
        step["step_devices"] = step["devices"]
        if "," in step["devices"]:
            step["replicas"] = len(step["devices"].split(","))
    return steps


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):  # the exception's own line, not a warning after it
        if "Error" in line or "error" in line:
            return line.strip()[:300]
    return (lines[-1].strip() if lines else "no output")[:300]


def _command(step: dict[str, Any], args: argparse.Namespace, checkpoint: Path) -> list[str]:
    tiny = ["--tiny"] if args.tiny else []
    if step["kind"] == "pytest":
        # the test files that hold tests marked gpu (collecting every file would
        # need every extra, e.g. catboost, on the GPU machine)
        files = sorted(
            str(f.relative_to(REPO))
            for f in (REPO / "tests").glob("test_*.py")
            if "pytest.mark.gpu" in f.read_text()
        )
        return [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", *files]
    if step["kind"] == "finetune":
        return [
            sys.executable,
            str(HERE / "finetune.py"),
            "--gpu-child",
            "--checkpoint",
            str(checkpoint),
            "--device",
            step["devices"],
            "--quantization",
            step["q"],
            "--dtype",
            step["dtype"],
            "--rows",
            str(step["rows"]),
            "--max-length",
            str(step["max_length"]),
            "--batch-size",
            str(step["batch_size"]),
            *tiny,
        ]
    cmd = [
        sys.executable,
        str(HERE / "gpu.py"),
        "--checkpoint",
        str(checkpoint),
        "--device",
        step["devices"],
        "--quantization",
        step["q"],
        "--dtype",
        step["dtype"],
        "--attn",
        "eager",  # Gemma-2 has no SDPA path in transformers 5.x
        "--rows",
        str(step["rows"]),
        "--max-length",
        str(step["max_length"]),
        "--batch-size",
        str(step["batch_size"]),
        "--max-tokens-per-batch",
        str(step["max_tokens"]),
        *tiny,
    ]
    if step.get("oom_headroom_gib"):
        cmd += ["--oom-headroom-gib", str(step["oom_headroom_gib"])]
    return cmd


def _pytest_result(r: subprocess.CompletedProcess[str], cuda: bool) -> dict[str, Any]:
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else "no output"
    skips = [ln.strip() for ln in lines if ln.startswith("SKIPPED")]
    out: dict[str, Any] = {"summary": summary, "skips": skips}
    if r.returncode not in (0, 5):
        out["status"] = "failed"
        out["failures"] = [ln.strip() for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    elif not cuda:
        # without CUDA the tests marked gpu must skip, each naming why
        clean = "passed" not in summary and "failed" not in summary
        out["status"] = "skipped: no CUDA" if clean else "failed: ran without CUDA"
    else:
        out["status"] = "ok"
    return out


def _row(step: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The summary row of one step."""
    row = {k: v for k, v in step.items() if k != "kind"}
    row["kind"] = step["kind"]
    row.update(result)
    if step["kind"] in ("embed", "finetune") and result.get("status") == "ok":
        if step["kind"] == "embed":
            peak = result.get("peak_cuda_gb")
        else:
            values = [result.get("train_peak_cuda_gib"), result.get("infer_peak_cuda_gib")]
            known = [v for v in values if v is not None]
            peak = max(known) if known else None
        row["peak_gib"] = peak
        row["fits_t4"] = None if peak is None else bool(peak * 2**30 / 1e9 <= T4_GB)
    return row


def _markdown(report: dict[str, Any]) -> str:
    env = report["cuda"]
    where = (
        f"{env['name']} (compute capability {env['capability']}, "
        f"{env['total_gib']:.0f} GiB, bf16: {'yes' if env['bf16'] else 'no'})"
        if env.get("cuda")
        else f"no CUDA device ({report['device']})"
    )
    state = "complete" if report["complete"] else "INCOMPLETE (still running, or stopped)"
    lines = [
        f"# GPU check ({report['machine']['date']}, {state})",
        "",
        f"Command: `{report['command']}`; on {where}; "
        f"{'tiny sizes' if report['tiny'] else 'Gemma-2-9b sizes, random weights'}; "
        f"{report['seconds']:.0f} s of a {report['budget_s']:.0f} s budget.",
        "",
        f"Peak memory is PyTorch's peak allocation on the device; a T4 has {T4_GB:.0f} GB "
        "(the CUDA context and the allocator's cache take a few hundred MB more).",
        "",
        "| check | status | dtype | peak GiB | fits a T4 | tokens/s | notes |",
        "| --- | --- | --- | ---: | --- | ---: | --- |",
    ]
    for r in report["results"]:
        peak = r.get("peak_gib")
        fits = {True: "yes", False: "no", None: "-"}[r.get("fits_t4")]
        speed = r.get("tokens_per_s") or r.get("train_tokens_per_s")
        notes = []
        if r["kind"] == "pytest":
            notes.append(r.get("summary", ""))
        if r.get("oom_backoffs"):
            caps = ", ".join(f"{d} {c:.1f} GiB" for d, c in r["memory_cap_gib_per_device"].items())
            notes.append(f"{r['oom_backoffs']} OOM back-off(s) under a cap of {caps}")
        elif r.get("oom_headroom_gib") and r.get("status") == "ok":
            notes.append("no OOM back-off happened")
        if r.get("loss_scaling"):
            notes.append(r["loss_scaling"][-1])
        if r.get("replicas"):
            notes.append(f"{r['replicas']} replicas on {r['step_devices']}")
        if r.get("error"):
            notes.append(r["error"])
        lines.append(
            f"| {r['name']} | {r['status']} | {r.get('dtype', '-')} | "
            f"{'-' if peak is None else f'{peak:.1f}'} | {fits} | "
            f"{'-' if not speed else f'{speed:.0f}'} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            default_device = "cuda:0"
    except ImportError:
        pass
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes: smoke-test the script")
    p.add_argument("--device", default=default_device)
    p.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget (s)")
    p.add_argument("--checkpoint", default=None, help="reuse a saved random checkpoint")
    p.add_argument("--out", default=str(RESULTS / "gpu-check"), help="summary path (no suffix)")
    args = p.parse_args(argv)
    if args.tiny and args.out == str(RESULTS / "gpu-check"):
        args.out = str(RESULTS / "gpu-check-tiny")

    start = time.monotonic()
    deadline = start + args.budget_s
    cuda = _cuda_facts(args.device)
    bnb = importlib.util.find_spec("bitsandbytes") is not None
    report: dict[str, Any] = {
        "command": " ".join(["scripts/gpu_check.sh", *sys.argv[1:]]),
        "machine": machine_info("peft", "bitsandbytes", "accelerate"),
        "device": args.device,
        "cuda": cuda,
        "tiny": args.tiny,
        "budget_s": args.budget_s,
        "t4_gb": T4_GB,
        "complete": False,
        "seconds": 0.0,
        "results": [],
    }

    def save() -> None:
        report["seconds"] = time.monotonic() - start
        write_report(args.out, report, _markdown(report))

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def run(cmd: list[str], cap: float) -> subprocess.CompletedProcess[str] | str:
        left = deadline - time.monotonic()
        if left < MIN_STEP_S:
            return "skipped: time budget"
        try:
            return subprocess.run(
                cmd,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=min(cap, left),
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {min(cap, left):.0f} s"

    checkpoint = Path(args.checkpoint or tempfile.mkdtemp(prefix="gemma2-9b-random-"))
    steps = _steps(args)
    built: str | None = None
    for step in steps:
        t0 = time.monotonic()
        result: dict[str, Any]
        if step["kind"] == "pytest":
            r = run(_command(step, args, checkpoint), 150)
            if isinstance(r, str):
                result = {"status": r}
            else:
                result = _pytest_result(r, bool(cuda.get("cuda")))
        elif step.get("needs_cuda") and not cuda.get("cuda"):
            result = {"status": f"skipped: {cuda.get('why', 'no CUDA')}"}
        elif step["q"] != "none" and not bnb:
            result = {"status": "skipped: bitsandbytes not installed"}
        else:
            if built is None:  # the checkpoint, once, before the first model step
                sizes = "TINY" if args.tiny else "GEMMA2_9B"
                code = (
                    f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path; "
                    f"from gpu import build_checkpoint, {sizes}; "
                    f"build_checkpoint(Path({str(checkpoint)!r}), {sizes})"
                )
                b = run([sys.executable, "-c", code], 240)
                if isinstance(b, str):
                    built = b
                else:
                    built = "ok" if b.returncode == 0 else f"error: {_error_line(b.stderr)}"
                report["checkpoint"] = {"path": str(checkpoint), "status": built}
            if built != "ok":
                result = {"status": f"skipped: no checkpoint ({built})"}
            else:
                r = run(_command(step, args, checkpoint), 150)
                if isinstance(r, str):
                    result = {"status": r}
                elif r.returncode != 0 or _last_json(r.stdout) is None:
                    result = {"status": "error", "error": _error_line(r.stderr)}
                else:
                    result = {"status": "ok", **(_last_json(r.stdout) or {})}
                    if result.get("finite") is False:
                        result["status"] = "error"
                        result["error"] = "non-finite outputs"
                    if step.get("oom_headroom_gib") and not result.get("oom_backoffs"):
                        result["status"] = "error"
                        result["error"] = "the memory cap caused no out-of-memory back-off"
        result["step_seconds"] = time.monotonic() - t0  # the child's own timings stay
        report["results"].append(_row(step, result))
        print(f"{step['name']}: {result['status']} ({result['step_seconds']:.0f} s)", flush=True)
        save()
    report["complete"] = True
    save()
    print(Path(args.out).with_suffix(".md").read_text())
    failed = [r for r in report["results"] if not str(r["status"]).startswith(("ok", "skipped"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
