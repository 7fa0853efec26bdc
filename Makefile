# Two commands for a new user: `make run` and `make test`. Each builds .venv from uv.lock when missing.
SHELL := /bin/bash
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
# The system interpreter, found before .venv/bin goes first on PATH: it bootstraps uv and the venv.
BOOTSTRAP_PYTHON := $(shell command -v python3.11 || command -v python3)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Prefect's temporary server (make run) gets 20 s to start by default: not enough on a busy 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: run test test-fast lint dag plots bench gpu-wheels remote-check

$(VENV)/.synced: pyproject.toml uv.lock
	@$(BOOTSTRAP_PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(BOOTSTRAP_PYTHON) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BOOTSTRAP_PYTHON) -m uv sync --frozen --python $(BOOTSTRAP_PYTHON) --compile-bytecode
	@touch $@

# The flow runs in a session of its own: Ctrl-C stops it within seconds, DVC consistent (flows/interruption.py).
run: $(VENV)/.synced
	$(PY) -m flows.lesson2
	@echo
	@echo "Submission: data/submission/submission.csv   receipt: data/submission/receipt.json"
	@echo "Model:      models/head.keras                 features: data/features/"
	@$(PY) -m dvc metrics show

# Lint first: it takes a second, the suite eight minutes on 2 cores. CI (.ci/run) runs this target.
test: lint
	$(PY) -m pytest -q

# Lint and the fast tier alone (tests/unit): under a minute, for the edit-test loop.
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

# ruff, configured in pyproject.toml: lint findings, then code `ruff format` would change (fix: `ruff format .`).
lint: $(VENV)/.synced
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

dag: $(VENV)/.synced
	$(PY) -m dvc dag

# The learning curves, learning rate, confusion matrix and pictures as one page, dvc_plots/index.html, that draws with
# no network: DVC's own page loads Vega from a CDN (tasks/plots/offline_page.py inlines it from the venv instead).
plots: $(VENV)/.synced
	$(PY) -m tasks.plots.offline_page

# Issue 7's figures, measured side by side in one run (7.5 min on 2 idle cores): bench/RESULTS.md. On the real photos at
# ../shared/data/real-sample when that is there, else synthetic ones. `python -m bench.run --quick`: a smoke run.
bench: $(VENV)/.synced
	PYTHONPATH=. $(PY) -m bench.run

# Needs the network. Keras and the two of its needs that the device tool's H200 image lacks (it has JAX with CUDA, no
# TensorFlow), as CPython 3.12 wheels in .whl/, at uv.lock's versions: carry .whl there and run `bash bench/gpu.sh`.
gpu-wheels:
	$(BOOTSTRAP_PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

remote-check: $(VENV)/.synced
	$(PY) -m tasks.remote.check
