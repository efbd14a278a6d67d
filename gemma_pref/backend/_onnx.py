# SPDX-License-Identifier: Apache-2.0
"""The ONNX Runtime path for CPUs without native bf16 (private to the package).

This is the only module that imports ``onnxruntime`` and ``torch.onnx``.

A checkpoint and a *head* (what a forward pass returns per row, see
:mod:`gemma_pref.embedding._engine`) are exported together, once, with PyTorch's
TorchScript-based ONNX exporter (about 20 s for Gemma 3 270M on two cores;
the ``torch.export``-based one took 117 s for the same graph), so the graph
returns the pooled float32 vectors and nothing of the token states leaves the
session. The export is checked against the PyTorch model on two batches of
other shapes than the one traced (a long padded one and a one-token one);
a graph that disagrees is deleted and the export fails. Exports live in
``<gemma-pref home>/onnx/<key>/`` and are written to a temporary directory
renamed into place, so a reader never sees a partial one. The key covers the
checkpoint's fingerprint, the head (for the embedder: its pooling and the
hidden states it pools, ``PoolingHead(mode='mean', layers=(9,))``, which
also fix the decoder layers the graph holds: a middle layer exports a
truncated stack), the model keyword arguments and the torch, transformers
and exporter versions. The last hidden state's head has the key it had
before heads named layers, so its exports are reused.

ONNX Runtime runs the graph in float32 with its own CPU kernels (MLAS):
the same arithmetic as PyTorch's float32, 1.1-1.3x faster on the AVX2 CPUs
we measured (``benchmarks/cpu_backends.py``); vectors agree with PyTorch's to
a cosine of 1.0 (float32 rounding).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import _compute  # one way: _compute never imports this module

__all__ = [
    "ONNX_OPSET",
    "REQUIREMENTS",
    "OnnxReplica",
    "available",
    "export_dir",
    "exported_model",
    "folder_size",
    "quantized_model",
    "replicas",
    "version",
]

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graphs.
ONNX_OPSET = 17
#: Bumped when the export recipe changes, so that older exports are not reused.
_EXPORT_FORMAT = 1
_MIN_COSINE = 0.9999
_INPUTS = ("input_ids", "attention_mask")


#: What ``pip install`` needs for this path (the ``onnx`` extra).
REQUIREMENTS = _compute.ONNX_REQUIREMENTS


def available() -> bool:
    """Whether ONNX Runtime and ``onnx`` (which the exporter writes with) are
    installed, checked without importing them."""
    return _compute.onnx_available()


def version() -> str:
    """The installed ONNX Runtime version."""
    import onnxruntime

    return str(onnxruntime.__version__)


class _HeadModule(torch.nn.Module):
    """``head(model, input_ids, attention_mask)`` as one traceable module."""

    def __init__(self, model: Any, head: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.model, input_ids, attention_mask)


class OnnxReplica:
    """One ONNX Runtime session of an exported graph, called like a head.

    ``replica(input_ids, attention_mask)`` takes and returns CPU tensors.
    """

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False),
        }
        (out,) = self.session.run(None, feeds)
        return torch.from_numpy(np.ascontiguousarray(out))

    def __repr__(self) -> str:
        return f"OnnxReplica({str(self.path)!r}, threads={self.threads})"


def export_dir(root: Path, key: dict[str, Any]) -> Path:
    """The directory of the export described by ``key`` under ``root``."""
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return Path(root) / hashlib.sha256(blob).hexdigest()[:24]


def _export_key(fingerprint: str, head: Any, model_kwargs: dict | None) -> dict[str, Any]:
    from . import _checkpoints

    return {
        "model": fingerprint,
        "head": repr(head),
        "model_kwargs": model_kwargs,
        "opset": ONNX_OPSET,
        "format": _EXPORT_FORMAT,
        "libraries": _checkpoints.library_versions(),
    }


def _probe_batches(max_length: int, vocab_size: int, pad_id: int) -> list[tuple[Any, Any]]:
    """Batches of other shapes than the traced one, to check the export with:
    two rows of ``max_length`` and a third of it (right padding), and one
    one-token row."""
    rng = np.random.default_rng(0)
    high = max(3, min(int(vocab_size), 4096))
    long = max(2, int(max_length))
    ids = rng.integers(2, high, size=(2, long))
    mask = np.ones_like(ids)
    short = max(1, long // 3)
    ids[1, short:] = pad_id
    mask[1, short:] = 0
    one_ids = rng.integers(2, high, size=(1, 1))
    return [
        (torch.from_numpy(ids), torch.from_numpy(mask)),
        (torch.from_numpy(one_ids), torch.ones((1, 1), dtype=torch.long)),
    ]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).reshape(len(a), -1)
    b = b.astype(np.float64).reshape(len(b), -1)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), (a == b).all(axis=1).astype(float))
    return float(cos.min())


def _export(
    model: Any,
    head: Any,
    folder: Path,
    *,
    max_length: int,
    pad_id: int,
) -> dict[str, Any]:
    """Export ``head(model, ...)`` into ``folder/model.onnx`` and check it."""
    module = _HeadModule(model, head).eval()
    # traced on a small padded batch; dynamic batch and sequence axes
    trace_ids = torch.tensor([[2, 3, 4, 5, 6, 7], [2, 3, 4, pad_id, pad_id, pad_id]])
    trace_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    path = folder / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export (6x
        # slower here) and warns about shape checks it records as constants;
        # the probes below catch a graph that does not generalise
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (trace_ids, trace_mask),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=list(_INPUTS),
            output_names=["output"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "output": {0: "batch"},
            },
        )
    vocab = getattr(getattr(model, "config", None), "vocab_size", 4096) or 4096
    replica = OnnxReplica(path, torch.get_num_threads())
    worst = 1.0
    for ids, mask in _probe_batches(max_length, vocab, pad_id):
        with torch.inference_mode():
            expected = module(ids, mask).to(torch.float32).numpy()
        got = replica(ids, mask).numpy()
        if got.shape != expected.shape:
            raise RuntimeError(
                f"the ONNX export returned shape {got.shape} where PyTorch returns "
                f"{expected.shape} (batch {tuple(ids.shape)})"
            )
        cos = _min_cosine(got, expected)
        if not cos >= _MIN_COSINE:
            raise RuntimeError(
                f"the ONNX export disagrees with PyTorch on a batch of shape "
                f"{tuple(ids.shape)}: min cosine {cos:.6f} < {_MIN_COSINE}; this "
                "architecture does not export faithfully: use backend='torch'"
            )
        worst = min(worst, cos)
    return {"probe_min_cosine": worst, "probe_max_length": int(max_length)}


def exported_model(
    root: Path,
    *,
    fingerprint: str,
    head: Any,
    model_kwargs: dict | None,
    max_length: int,
    pad_id: int,
    load_torch_model: Callable[[], Any],
) -> Path:
    """The checked ONNX graph of ``head`` on the checkpoint; exported on first use.

    ``load_torch_model()`` loads the float32 PyTorch model to export (only
    called when no checked export exists). An export checked with a shorter
    ``max_length`` than asked for is redone at this one, so that the check
    covers every length the graph will see.
    """
    key = _export_key(fingerprint, head, model_kwargs)
    folder = export_dir(root, key)
    if _checked_up_to(folder) >= int(max_length):
        return folder / "model.onnx"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".export-"))
    try:
        logger.info("Exporting %s to ONNX (once per checkpoint): %s", head, folder)
        started = time.perf_counter()
        model = load_torch_model()
        checked = _export(model, head, tmp, max_length=max_length, pad_id=pad_id)
        del model
        meta = {
            **key,
            **checked,
            "onnxruntime": version(),
            "torch": torch.__version__,
            "bytes": folder_size(tmp),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        logger.info(
            "One-time: exported %s to ONNX in %.0f s (%s on disk): %s",
            head,
            time.perf_counter() - started,
            _human(meta["bytes"]),
            folder,
        )
        os.chmod(tmp, 0o755)
        if _checked_up_to(folder) >= int(max_length):
            # another process finished the same export first: use that one
            return folder / "model.onnx"
        if folder.exists():  # an export checked on shorter texts: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if _checked_up_to(folder) < int(max_length):  # not another process's export
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "model.onnx"


def _checked_up_to(folder: Path) -> int:
    """The longest batch an export in ``folder`` was checked on; 0 if none."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return int(meta.get("probe_max_length", 0))
    except (OSError, ValueError, TypeError):
        return 0


def replicas(path: Path, devices: Sequence[str]) -> list[OnnxReplica]:
    """One session per CPU replica; the process's torch threads are shared among them."""
    threads = max(1, torch.get_num_threads() // max(1, len(devices)))
    return [OnnxReplica(path, threads) for _ in devices]


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


class _DropOnnxRuntimeRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs each tensor it leaves alone, and advice,
    on the root logger: those records are dropped while it runs."""
    root = logging.getLogger()
    drop = _DropOnnxRuntimeRecords()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


#: The lowest cosine between the int8 graph's vectors and the float32 graph's
#: on the probe batches (random tokens) before the int8 graph is refused; on
#: real texts the default model's vectors agree to about 0.99.
_MIN_INT8_COSINE = 0.9


def quantized_model(
    source: Path, settings: dict[str, Any], *, max_length: int, pad_id: int, vocab_size: int
) -> Path:
    """The 8-bit graph of the checked float32 export ``source`` (its
    ``model.onnx``): ONNX Runtime's dynamic quantization with ``settings``
    (:func:`gemma_pref.backend._compute.int8_settings`), made on first use, beside
    the float32 export under the same root, and checked against it.

    The int8 graph quantizes each MatMul's weights once (``per_channel``:
    one scale per output column, ``reduce_range``: 7 bits) and its
    activations per call; the embedding table (a Gather) stays float32.
    ``meta.json`` records the settings, the float32 export it came from, the
    probes' lowest cosine to the float32 vectors and the size on disk.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = Path(source)
    root = source.parent.parent
    key = {"source": source.parent.name, "quantization": settings, "onnxruntime": version()}
    folder = export_dir(root, key)
    if (folder / "meta.json").is_file() and (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".quantize-"))
    try:
        logger.info("Quantizing the ONNX export %s to 8-bit weights (once): %s", source, folder)
        started = time.perf_counter()
        large = folder_size(source.parent) > 1_800_000_000  # protobuf's 2 GB limit
        with warnings.catch_warnings(), _quiet_quantizer():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                source,
                tmp / "model.onnx",
                op_types_to_quantize=list(settings["op_types"]),
                per_channel=bool(settings["per_channel"]),
                reduce_range=bool(settings["reduce_range"]),
                weight_type=QuantType.QInt8,
                use_external_data_format=large,
            )
        threads = torch.get_num_threads()
        fp32, int8 = OnnxReplica(source, threads), OnnxReplica(tmp / "model.onnx", threads)
        worst = 1.0
        for ids, mask in _probe_batches(max_length, vocab_size, pad_id):
            cos = _min_cosine(int8(ids, mask).numpy(), fp32(ids, mask).numpy())
            if not cos >= _MIN_INT8_COSINE:
                raise RuntimeError(
                    f"the 8-bit graph's vectors disagree with the float32 graph's on a batch "
                    f"of shape {tuple(ids.shape)}: min cosine {cos:.4f} < {_MIN_INT8_COSINE}; "
                    "this model does not quantize faithfully: leave quantization=None"
                )
            worst = min(worst, cos)
        del fp32, int8
        meta: dict[str, Any] = {
            **key,
            "probe_min_cosine_to_float32": worst,
            "bytes": folder_size(tmp),
            "source_bytes": folder_size(source.parent),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        os.chmod(tmp, 0o755)
        logger.info(
            "One-time: quantized to 8-bit weights in %.0f s (%s on disk; the float32 "
            "export: %s): %s",
            time.perf_counter() - started,
            _human(meta["bytes"]),
            _human(meta["source_bytes"]),
            folder,
        )
        if (folder / "meta.json").is_file():
            return folder / "model.onnx"  # another process finished first
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "model.onnx"
