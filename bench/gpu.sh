#!/usr/bin/env bash
# The conv pass on a lent GPU, float32 vs bf16: `bash bench/gpu.sh [--images N] [--batch-size B]`.
# Uses the project's .venv when it holds TensorFlow with CUDA (`uv sync --extra gpu`), else the machine's python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import tensorflow" 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: running on CPU"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PYTHONPATH=. exec "$PY" -m bench.gpu_pass "$@"
