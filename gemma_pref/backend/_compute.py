# SPDX-License-Identifier: Apache-2.0
"""What a model computes in, and on what: CPU and GPU facts, the dtype, the backend.

The policy behind ``dtype="auto"`` and ``backend="auto"``: this CPU's bf16
and 8-bit dot-product instructions, a device's :class:`DeviceFacts`, the
settings of ONNX Runtime's int8 weights, and :func:`resolve_compute`, which
resolves the ``backend``, ``dtype`` and ``quantization`` parameters
together. Whether ONNX Runtime is installed is checked without importing it
(nor :mod:`gemma_pref.backend._onnx`); torch is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "cpu_supports_bf16",
    "cpu_flags",
    "VNNI_FLAGS",
    "cpu_has_vnni",
    "int8_settings",
    "FP16_OVERFLOW_MODEL_TYPES",
    "DeviceFacts",
    "device_facts",
    "auto_dtype",
    "nonfinite_advice",
    "resolve_dtype",
    "ONNX_REQUIREMENTS",
    "onnx_available",
    "BACKEND_CHOICES",
    "ComputePath",
    "resolve_compute",
    "resolve_backend",
    "dtype_name",
]


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (``/proc/cpuinfo``; empty where
    that is not readable, as on macOS and Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: CPU flags of the 8-bit dot-product instructions (VNNI) that ONNX Runtime's
#: int8 kernels use; without them the u8 x s8 products are summed in pairs
#: into 16 bits and can saturate unless the weights use 7 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX-512 VNNI,
    AVX-VNNI or AMX-INT8)."""
    return bool(cpu_flags() & VNNI_FLAGS)


def int8_settings() -> dict[str, Any]:
    """How the 8-bit ONNX Runtime path quantizes an export on this CPU:
    ONNX Runtime's dynamic quantization of the MatMul weights to int8, one
    scale per output channel; ``reduce_range`` (7-bit weights) on CPUs
    without VNNI, as ONNX Runtime advises for per-channel weights there.
    The vectors depend on these settings: they are part of the cache keys."""
    return {
        "method": "dynamic",
        "op_types": ["MatMul"],
        "weight_type": "int8",
        "per_channel": True,
        "reduce_range": not cpu_has_vnni(),
    }


#: ``model_type`` values (config.json) whose activations overflow float16 and
#: whose modelling code in transformers 5.24 does not clamp them: Gemma 3
#: (``modeling_gemma3.py`` has no clamp; transformers issue #36822).
FP16_OVERFLOW_MODEL_TYPES = frozenset({"gemma3", "gemma3_text"})


@dataclass(frozen=True)
class DeviceFacts:
    """What the choice of a compute dtype depends on, for one device.

    ``kind`` is the torch device type (``"cuda"``, ``"cpu"``, ...); ``bf16``
    whether it has native bfloat16 arithmetic (CUDA compute capability 8 or
    more: A100, L4, H100; not a T4 or V100; on CPUs, AVX-512-BF16 or AMX).
    """

    kind: str
    bf16: bool
    name: str = ""


def device_facts(device: str) -> DeviceFacts:
    """The :class:`DeviceFacts` of ``device`` on this machine."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        major, minor = torch.cuda.get_device_capability(index)
        name = f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
        return DeviceFacts("cuda", major >= 8, name)
    if kind == "cpu":
        return DeviceFacts("cpu", cpu_supports_bf16(), "CPU")
    return DeviceFacts(kind, False, kind)


def auto_dtype(
    facts: DeviceFacts, model_type: str | None = None, quantization: str | None = None
) -> tuple[str, str]:
    """What ``dtype="auto"`` computes in: ``(dtype name, why)``.

    A pure function of the device's facts, the checkpoint's ``model_type``
    and the quantization:

    - CUDA with bf16: bfloat16, 8-bit included (bitsandbytes 0.50's int8
      matmul casts its input to float16 only to quantize it, and returns the
      input's dtype: bfloat16 keeps the rest of the model out of float16).
    - CUDA without bf16 (T4, V100): float16, except for the architectures of
      :data:`FP16_OVERFLOW_MODEL_TYPES`, which overflow there: float32 (with
      4-/8-bit weights, float32 is the compute dtype of what is not quantized).
    - CPU: bfloat16 with native bf16 instructions (about 2x float32), else
      float32. Other devices: float32.

    Examples
    --------
    >>> t4 = DeviceFacts("cuda", bf16=False, name="Tesla T4")
    >>> auto_dtype(t4, "gemma2")[0], auto_dtype(t4, "gemma3_text")[0]
    ('float16', 'float32')
    >>> auto_dtype(DeviceFacts("cuda", bf16=True), "gemma2", "8bit")[0]
    'bfloat16'
    """
    if facts.kind == "cuda":
        if facts.bf16:
            return "bfloat16", "native bf16 on this GPU"
        if model_type in FP16_OVERFLOW_MODEL_TYPES:
            return "float32", f"no bf16 on this GPU, and {model_type} overflows in float16"
        return "float16", "no bf16 on this GPU"
    if facts.kind == "cpu":
        if facts.bf16:
            return "bfloat16", "native bf16 on this CPU"
        return "float32", "no native bf16 on this CPU"
    return "float32", f"float32 on {facts.kind}"


def nonfinite_advice(dtype_name: str, facts: DeviceFacts) -> str:
    """What to do about non-finite values computed in ``dtype_name`` on a
    device with ``facts``: only what that device can run."""
    if dtype_name == "float32":
        return "the model or its inputs produce them even in float32"
    if dtype_name == "float16" and not facts.bf16:
        where = "this GPU" if facts.kind == "cuda" else "this device"
        return (
            f"float16 overflows on some models (Gemma 3 among them) and {where} has no "
            "bfloat16: use dtype='float32' (with quantization='4bit' or '8bit' "
            "to fit the weights)"
        )
    if dtype_name == "float16":
        return "float16 overflows on some models: use dtype='bfloat16' or 'float32'"
    return "use dtype='float32'"


def resolve_dtype(
    torch_dtype: Any,
    device: str,
    quantization: str | None = None,
    model_type: str | None = None,
) -> Any:
    """Resolve the ``dtype`` parameter to a ``torch.dtype`` for ``device``.

    ``"auto"`` is :func:`auto_dtype` of the device's facts, the checkpoint's
    ``model_type`` (``None``: not known to overflow) and the quantization.
    """
    import torch

    if isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    if torch_dtype != "auto":
        return getattr(torch, torch_dtype)
    name, _ = auto_dtype(device_facts(device), model_type, quantization)
    return getattr(torch, name)


#: What ``pip install`` needs for the ONNX Runtime path (the ``onnx`` extra).
ONNX_REQUIREMENTS = ("onnxruntime", "onnx")


def onnx_available() -> bool:
    """Whether ONNX Runtime and ``onnx`` (which the exporter writes with) are
    installed, checked without importing them."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ONNX_REQUIREMENTS)


#: Values of the embedder's ``backend`` parameter.
BACKEND_CHOICES = ("auto", "torch", "onnxruntime")


def _resolve_backend(
    backend: str,
    devices: list[str],
    torch_dtype: Any,
    quantization: str | None,
    model_type: str | None = None,
    onnx_int8: bool = True,
) -> tuple[str, Any, str]:
    """Resolve the ``backend`` parameter: ``(backend, dtype, why)``.

    ``"auto"`` picks ONNX Runtime when every device is a CPU, the compute
    dtype resolves to float32 (a CPU without native bf16, or
    ``dtype="float32"``) and the ``onnx`` extra is installed; with
    ``quantization="8bit"`` on CPUs it picks ONNX Runtime's int8 weights
    (float32 activations) where the extra is installed, else bitsandbytes;
    ``"4bit"`` is always bitsandbytes (PyTorch). ``"onnxruntime"`` asked for
    explicitly computes in float32 (``dtype="auto"`` resolves to it), with
    float32 or 8-bit weights, and raises where it cannot run.
    ``onnx_int8=False`` (the fine-tuned classifier, trained on bitsandbytes'
    weights): 8-bit weights are bitsandbytes' on PyTorch only.
    """
    import torch

    cpu = all(d.split(":")[0] == "cpu" for d in devices)
    if backend == "onnxruntime":
        if not cpu:
            raise ValueError(
                f"backend='onnxruntime' runs on CPU devices only; got devices={devices}. "
                "Use backend='torch' (or 'auto') on GPUs."
            )
        if quantization not in ((None, "8bit") if onnx_int8 else (None,)):
            raise ValueError(
                f"backend='onnxruntime' runs float32{' or 8-bit' if onnx_int8 else ''} "
                f"weights; got quantization={quantization!r}. Use backend='torch' with "
                "bitsandbytes for these weights."
            )
        dtype = torch.float32 if torch_dtype == "auto" else resolve_dtype(torch_dtype, "cpu")
        if dtype != torch.float32:
            raise ValueError(
                f"backend='onnxruntime' computes in float32; got dtype={torch_dtype!r}."
            )
        if not onnx_available():
            raise ImportError(
                "backend='onnxruntime' needs onnxruntime and onnx: pip install 'gemma-pref[onnx]'"
            )
        return "onnxruntime", dtype, "asked for"
    if backend == "auto" and cpu and quantization == "8bit" and onnx_int8:
        dtype = torch.float32 if torch_dtype == "auto" else resolve_dtype(torch_dtype, "cpu")
        if dtype == torch.float32 and onnx_available():
            return "onnxruntime", dtype, "8-bit weights on CPU: ONNX Runtime int8"
    dtype = resolve_dtype(torch_dtype, devices[0], quantization, model_type)
    if backend == "torch":
        return "torch", dtype, "asked for"
    if not cpu:
        return "torch", dtype, "GPU"
    if quantization is not None:
        if quantization == "8bit" and dtype == torch.float32 and onnx_int8:
            return (
                "torch",
                dtype,
                "8bit weights (bitsandbytes); pip install 'gemma-pref[onnx]' for ONNX Runtime int8",
            )
        return "torch", dtype, f"{quantization} weights (bitsandbytes)"
    if dtype != torch.float32:
        if torch_dtype == "auto":
            return "torch", dtype, "native bf16 on this CPU"
        return "torch", dtype, f"{dtype_name(dtype)} asked for"
    if not onnx_available():
        return "torch", dtype, "float32; pip install 'gemma-pref[onnx]' for ONNX Runtime"
    why = "float32 on a CPU without native bf16" if torch_dtype == "auto" else "float32 on CPU"
    return "onnxruntime", dtype, why


@dataclass(frozen=True)
class ComputePath:
    """What a model step's forward passes run on: the backend, the compute
    dtype, the weights' quantization (``None``: the dtype's) and why."""

    backend: str
    dtype: Any
    why: str
    quantization: str | None


def resolve_compute(
    backend: str,
    devices: list[str],
    torch_dtype: Any,
    quantization: str | None,
    model_type: str | None = None,
    onnx_int8: bool = True,
    auto_int8: bool = True,
) -> ComputePath:
    """Resolve the ``backend``, ``dtype`` and ``quantization`` parameters
    together (see :func:`resolve_backend`).

    Under ``backend="auto"``, ``dtype="auto"`` and ``quantization=None`` on
    CPUs without native bf16, with ONNX Runtime installed, the weights are
    ONNX Runtime's int8 (float32 activations): on those CPUs it is 1.7x
    faster than float32 and it moved the default's cross-validated log loss
    by less than 0.003 (``docs/quality.md``). ``backend="onnxruntime"`` or
    ``dtype="float32"`` keep float32 weights there. ``auto_int8=False``
    (the caller's vectors were not measured faithful in int8, as the last
    hidden state's): float32 weights there too.
    """
    chosen, dtype, why = _resolve_backend(
        backend, devices, torch_dtype, quantization, model_type, onnx_int8
    )
    if (
        quantization is None
        and onnx_int8
        and auto_int8
        and backend == "auto"
        and chosen == "onnxruntime"
        and isinstance(torch_dtype, str)
        and torch_dtype == "auto"
        and not cpu_supports_bf16()
    ):
        return ComputePath(
            chosen, dtype, "no native bf16 on this CPU: ONNX Runtime int8 weights", "8bit"
        )
    return ComputePath(chosen, dtype, why, quantization)


def resolve_backend(*args: Any, **kwargs: Any) -> tuple[str, Any, str]:
    """``(backend, dtype, why)`` of :func:`resolve_compute` (its parameters)."""
    path = resolve_compute(*args, **kwargs)
    return path.backend, path.dtype, path.why


def dtype_name(dtype: Any) -> str:
    """``torch.float32`` -> ``"float32"`` (for logs, reports and cache keys)."""
    return str(dtype).replace("torch.", "")
