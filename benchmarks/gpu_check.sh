#!/usr/bin/env bash
# The GPU checks of the performance issue in one command, for whoever has a GPU for a few minutes
# (about 5-8 minutes on one H200): CUDA-against-CPU tests, then every speed figure (gpu_check.py).
#   DDCMI_DATA=/path/to/data bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 180 "$PY" -m pytest -q tests/test_cuda.py
timeout 420 "$PY" benchmarks/gpu_check.py "$@"
