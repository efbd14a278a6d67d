"""The decisions of the GPU code paths, as pure functions of a device's facts.

No GPU runs these: the dtype choice, the advice on non-finite values and the
devices of a Ray actor are functions of facts (compute capability, model
type, visible GPUs), tested here with the facts of a T4 and an A100.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gemma_pref.backend import _checkpoints, _compute
from gemma_pref.backend._compute import DeviceFacts, auto_dtype, nonfinite_advice

T4 = DeviceFacts("cuda", bf16=False, name="Tesla T4 (compute capability 7.5)")
A100 = DeviceFacts("cuda", bf16=True, name="NVIDIA A100 (compute capability 8.0)")


@pytest.mark.parametrize("quantization", [None, "4bit", "8bit"])
def test_t4_picks_float16_for_gemma2_and_float32_for_gemma3(quantization):
    assert auto_dtype(T4, "gemma2", quantization)[0] == "float16"
    for model_type in ("gemma3", "gemma3_text"):
        name, why = auto_dtype(T4, model_type, quantization)
        assert name == "float32" and model_type in why and "float16" in why
    assert auto_dtype(T4, None, quantization)[0] == "float16"  # type unknown


@pytest.mark.parametrize("quantization", [None, "4bit", "8bit"])
def test_a100_picks_bfloat16_for_every_model_and_quantization(quantization):
    # 8-bit too: bitsandbytes' int8 matmul returns its input's dtype (bf16)
    for model_type in ("gemma2", "gemma3_text", "llama", None):
        assert auto_dtype(A100, model_type, quantization)[0] == "bfloat16"


def test_cpu_choice_follows_native_bf16():
    assert auto_dtype(DeviceFacts("cpu", bf16=True), "gemma3_text")[0] == "bfloat16"
    assert auto_dtype(DeviceFacts("cpu", bf16=False), "gemma2")[0] == "float32"
    here = _compute.device_facts("cpu")
    expected = torch.bfloat16 if here.bf16 else torch.float32
    assert _compute.resolve_dtype("auto", "cpu", None, "gemma3_text") == expected
    assert _compute.resolve_dtype("auto", "cpu") == expected  # the old signature
    assert _compute.resolve_dtype("float16", "cpu", "8bit", "gemma3") == torch.float16


def test_nonfinite_advice_names_only_what_the_device_runs():
    on_t4 = nonfinite_advice("float16", T4)
    assert "dtype='float32'" in on_t4 and "bfloat16" in on_t4  # "has no bfloat16"
    assert "dtype='bfloat16'" not in on_t4
    assert "dtype='bfloat16'" in nonfinite_advice("float16", A100)
    assert "dtype='float32'" in nonfinite_advice("bfloat16", A100)
    assert "even in float32" in nonfinite_advice("float32", T4)


def test_model_type_of_reads_config_json(tiny_gemma, tmp_path):
    assert _checkpoints.model_type_of(tiny_gemma) == "gemma2"
    assert _checkpoints.model_type_of(tmp_path) is None  # no config.json


def test_loading_does_not_import_onnx():
    # _onnx imports _compute; _compute answers "is ONNX Runtime installed"
    # itself, so loading checkpoints and resolving a backend never import the
    # ONNX module
    code = (
        "import sys; from gemma_pref.backend import _checkpoints, _compute, _load; "
        "_compute.resolve_backend('auto', ['cpu'], 'float32', None); "
        "print('gemma_pref.backend._onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    from gemma_pref.backend import _onnx

    assert _onnx.available() == _compute.onnx_available()


def test_catboost_uses_the_gpus_with_room_beside_the_embedder():
    from gemma_pref.models._catboost import GPU_FLOOR_BYTES, gpu_plan

    gib = 2**30
    # 2xT4, a Gemma-2-9b 4-bit replica on each: about 8 GiB free on both
    assert gpu_plan([8 * gib, 8 * gib], 57_000, 3584)[:2] == ("GPU", "0:1")
    # one GPU nearly full (8-bit replica and cached blocks): the other only
    assert gpu_plan([gib // 2, 8 * gib], 57_000, 3584)[:2] == ("GPU", "1")
    task_type, devices, why = gpu_plan([gib // 2, gib // 2], 57_000, 3584)
    assert (task_type, devices) == ("CPU", None) and "GiB needed" in why
    assert gpu_plan([], 10, 10)[0] == "CPU"
    # one byte per quantized value: 57k rows x 3584 features are 0.19 GiB
    need = GPU_FLOOR_BYTES + 57_000 * 3584
    assert gpu_plan([need], 57_000, 3584)[0] == "GPU"
    assert gpu_plan([need - 1], 57_000, 3584)[0] == "CPU"
