#!/usr/bin/env bash
# Every GPU check of gemma-pref in one call of at most 8 minutes on one GPU:
# pytest -m gpu, benchmarks/gpu.py and benchmarks/finetune.py --gpu on the
# Gemma-2-9b architecture with random weights (4-bit, 8-bit, bf16, fp16 with
# the loss scaler), two replicas on one GPU standing in for two GPUs, a real
# CUDA out-of-memory back-off, and the peak memory of each configuration
# against a T4's 15 GB. Writes benchmarks/results/gpu-check.{json,md}
# (--out PATH to change; the summary is rewritten after every step and says
# whether it is complete).
#
#   scripts/gpu_check.sh                        # on a machine with a CUDA GPU
#   scripts/gpu_check.sh --tiny --device cpu    # smoke test of the script (tiny sizes, CPU)
#
# PYTHON names the interpreter (default: python3); it needs torch, transformers,
# peft, accelerate and (for the 4-/8-bit rows) bitsandbytes. The source tree is
# put first on PYTHONPATH, so gemma-pref itself need not be installed.
# GPU_CHECK_WHEELS=DIR installs the wheels in DIR first (into a temporary
# folder put on PYTHONPATH), for a machine that lacks some and has no network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
started=$(date +%s)
if [[ -n "${GPU_CHECK_WHEELS:-}" ]]; then
    site=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$GPU_CHECK_WHEELS"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# 8 minutes in all: what the wheels took comes off the checks' budget, and a
# hard stop 20 s after the budget (the summary on disk says how far it got)
left=$((480 - 20 - ($(date +%s) - started)))
exec timeout --kill-after=5 $((left + 15)) "$PY" benchmarks/gpu_check.py --budget-s "$left" "$@"
