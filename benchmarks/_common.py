# SPDX-License-Identifier: Apache-2.0
"""Pieces the benchmark scripts share: the machine record, peak memory, reports.

Every benchmark JSON records :func:`machine_info`: the CPU model, its
capabilities that decide which arithmetic is cheap (AVX2, AVX-512, AMX,
VNNI, native bfloat16), PyTorch's view of them, the GPU, and the libraries.
Timings from machines of one kind differ with these flags: always quote them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: /proc/cpuinfo flags that decide the speed of the CPU paths.
CPU_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


def cpu_info() -> dict[str, Any]:
    """CPU model, the flags of :data:`CPU_FLAGS` it has, and PyTorch's view."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info: dict[str, Any] = {
        "model": model,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "flags": [f for f in CPU_FLAGS if f in flags],
    }
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["native_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # torch missing or too old
        pass
    return info


def cpu_label(info: dict[str, Any] | None = None) -> str:
    """One line for reports: model, cores, the decisive flags."""
    info = info or cpu_info()
    kind = "native bf16" if info.get("native_bf16") else "no native bf16"
    flags = ", ".join(info["flags"]) or "none of the listed flags"
    return f"{info['model']}, {info['cores']} cores ({kind}; flags: {flags})"


def versions(*names: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in (
        "gemma-pref",
        "torch",
        "transformers",
        "scikit-learn",
        "numpy",
        *names,
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine_info(*packages: str) -> dict[str, Any]:
    """Where and with what a benchmark ran."""
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    return {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_info(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(*packages),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted": bool(_git("status", "--porcelain", "--", "gemma_pref")),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _git(*cmd: str) -> str:
    try:
        return subprocess.run(
            ["git", *cmd], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


class PeakRSS:
    """Sample this process's resident set size in a thread; keep the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def write_report(out: str | os.PathLike[str], report: dict[str, Any], markdown: str) -> None:
    """``<out>.json`` and ``<out>.md``, each written whole (temporary file, rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=2, default=str)), (".md", markdown)):
        path = out.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n")
        tmp.replace(path)
