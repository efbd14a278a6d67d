# SPDX-License-Identifier: Apache-2.0
"""Device resolution and the one-thread-per-device work loop."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..exceptions import DeviceWorkerError

__all__ = ["resolve_devices", "run_on_devices"]

T = TypeVar("T")


def resolve_devices(devices: str | Sequence[str], owner: str = "GemmaEmbedder") -> list[str]:
    """Turn the ``devices`` parameter into a list of torch device strings.

    ``"auto"`` means every visible CUDA device, else ``["cpu"]``. ``"cuda"`` means
    ``"cuda:0"``. Repeating a device (``["cpu", "cpu"]``) loads one replica per
    entry.

    Raises
    ------
    ValueError
        Naming the parameter, the bad entry and the allowed values when an
        entry is not a device, or names a device that is not visible.
    """
    import torch

    if isinstance(devices, str):
        if devices == "auto":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            return [f"cuda:{i}" for i in range(n)] or ["cpu"]
        devices = [devices]
    if len(devices) == 0:
        raise ValueError(
            f"The 'devices' parameter of {owner} must be 'auto', a device "
            "such as 'cpu' or 'cuda:0', or a non-empty list of devices; got []."
        )
    resolved = []
    for entry in devices:
        if not isinstance(entry, str):
            raise ValueError(
                f"The 'devices' parameter of {owner} must list device names "
                f"such as 'cpu' or 'cuda:0'; got {entry!r} in {list(devices)!r}."
            )
        try:
            dev = torch.device(entry)
        except RuntimeError:
            raise ValueError(
                f"The 'devices' parameter of {owner} has an unknown device "
                f"{entry!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'."
            ) from None
        if dev.type == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = 0 if dev.index is None else dev.index
            if index >= n:
                allowed = ", ".join(
                    repr(d) for d in ["auto", "cpu", *(f"cuda:{i}" for i in range(n))]
                )
                raise ValueError(
                    f"The 'devices' parameter of {owner} names a device that "
                    f"is not visible: device {entry!r} requested but only {n} CUDA "
                    f"device{'' if n == 1 else 's'} {'is' if n == 1 else 'are'} "
                    f"visible; allowed here: {allowed} (or a list of them)."
                )
            resolved.append(f"cuda:{index}")
        elif dev.type == "cpu":
            resolved.append(str(dev))
        elif dev.type in ("mps", "xpu"):
            backend = (
                getattr(torch.backends, "mps", None)
                if dev.type == "mps"
                else getattr(torch, "xpu", None)
            )
            if backend is None or not backend.is_available():
                raise ValueError(
                    f"The 'devices' parameter of {owner} names a device that "
                    f"is not available: {entry!r}; allowed here: 'auto', 'cpu' or "
                    "a visible 'cuda:N'."
                )
            resolved.append(str(dev))
        else:
            raise ValueError(
                f"The 'devices' parameter of {owner} has an unsupported "
                f"device {entry!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'."
            )
    return resolved


def run_on_devices(
    devices: Sequence[str],
    tasks: Sequence[T],
    work: Callable[[int, T], Any],
    what: str = "Embedding",
) -> None:
    """Run ``work(device_index, task)`` for every task, one thread per device.

    Threads pull tasks from one shared queue, so a fast device takes more work
    and all devices finish together. With one device the loop runs in the
    calling thread. When any call raises, the other threads stop after their
    current task, every thread is joined, and a
    :class:`~gemma_pref.exceptions.DeviceWorkerError` naming the device is
    raised from the original exception (its message starts with ``what``, as
    "Embedding failed on device 'cuda:1'"). No thread outlives this call, also
    on ``KeyboardInterrupt``.
    """
    if len(devices) == 1:
        for task in tasks:
            try:
                work(0, task)
            except Exception as exc:
                raise _device_error(devices[0], 0, 1, exc, what) from exc
        return

    pending: queue.SimpleQueue[T] = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    stop = threading.Event()
    errors: list[tuple[int, BaseException]] = []

    def loop(index: int) -> None:
        try:
            while not stop.is_set():
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                work(index, task)
        except BaseException as exc:  # re-raised in the caller below
            errors.append((index, exc))
            stop.set()

    threads = [
        threading.Thread(target=loop, args=(i,), name=f"gemma-pref-{dev}-{i}", daemon=True)
        for i, dev in enumerate(devices)
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        index, first = errors[0]
        error = _device_error(devices[index], index, len(devices), first, what)
        others = [
            f"device {devices[i]!r} (worker {i + 1}): {type(e).__name__}: {e}"
            for i, e in errors[1:]
        ]
        if others:
            error = DeviceWorkerError(
                f"{error} [also failed: {'; '.join(others)}]", device=error.device
            )
        raise error from first


def _device_error(
    device: str, index: int, n: int, exc: BaseException, what: str
) -> DeviceWorkerError:
    where = f"device {device!r}" + (f" (worker {index + 1} of {n})" if n > 1 else "")
    return DeviceWorkerError(
        f"{what} failed on {where}: {type(exc).__name__}: {exc}", device=device
    )
