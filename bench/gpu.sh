#!/usr/bin/env bash
# The conv pass on a lent GPU, float32 vs bf16: `bash bench/gpu.sh [--images N] [--batch-size B]`.
# Interpreter: the project's .venv when it holds TensorFlow with CUDA (`uv sync --extra gpu`); else the machine's
# python3 with Keras on JAX. The device tool's H200 image has JAX with CUDA but neither TensorFlow nor Keras and no
# network, so a session carries Keras and its two missing needs as wheels (docs/performance.md): they are installed
# from .whl/ when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import tensorflow" 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi
if [[ "$PY" == python3 ]] && ! python3 -c "import tensorflow" 2>/dev/null; then
  export KERAS_BACKEND=${KERAS_BACKEND:-jax}
  if ! python3 -c "import keras" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: running on CPU"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m bench.gpu_pass "$@"
