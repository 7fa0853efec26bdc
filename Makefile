# Two commands for a new user: `make run` and `make test`. Each builds .venv from uv.lock when missing.
SHELL := /bin/bash
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
# The system interpreter that bootstraps uv and the venv, found whatever the PATH: with the environment activated
# (.venv/bin first, as the README asks for `dvc` commands) python3.11 is the venv's own, which has no pip and no uv;
# a venv's interpreter names its base one (sys._base_executable), which has them.
BOOTSTRAP_PYTHON := $(shell for p in python3.11 python3; do command -v $$p >/dev/null && \
	$$p -c 'import sys; print(sys._base_executable)' && break; done)
# TensorFlow's build: cpu (no CUDA, no GPU probing at start-up) or gpu (`make run TENSORFLOW=gpu` on a GPU host).
TENSORFLOW ?= cpu
# make run installs only what a run needs; make test adds the ONNX Runtime and OpenVINO backends and the dev tools.
RUN_SET := --no-dev --extra $(TENSORFLOW)
TEST_SET := --extra $(TENSORFLOW) --extra onnxruntime --extra openvino
RUN_STAMP := $(VENV)/.synced-run-$(TENSORFLOW)
TEST_STAMP := $(VENV)/.synced-test-$(TENSORFLOW)
# No bytecode compiled up front: measured on 2 busy cores, compiling make run's 13,700 files took 21-23 s, while the
# first import of TensorFlow, Keras, DVC and Prefect compiles the 3,700 it needs in 6.5 s more and keeps them. Unless
# Python may not write bytecode (PYTHONDONTWRITEBYTECODE): then every process would compile its imports again
# (9.1-9.8 s against 3.7-4.3 s for the same import).
SYNC = echo "make: installing $(1) from uv.lock into $(VENV) (seconds from uv's cache; a minute or more downloading)"; \
	rm -f $(VENV)/.synced-*; \
	$(BOOTSTRAP_PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(BOOTSTRAP_PYTHON) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION); \
	$(BOOTSTRAP_PYTHON) -m uv sync --frozen --quiet --python $(BOOTSTRAP_PYTHON) $(2) \
		$(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode) && touch $(3)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Prefect's temporary server (make run) gets 20 s to start by default: not enough on a busy 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: run test test-fast lint dag plots browse bench gpu-wheels remote-check bootstrap-python

# The run's packages. An environment synced for make test since uv.lock last changed has them all: kept as it is, so
# make run and make test in turn never uninstall and reinstall the backends.
$(RUN_STAMP): pyproject.toml uv.lock
	@if [ -e $(TEST_STAMP) ] && [ $(TEST_STAMP) -nt pyproject.toml ] && [ $(TEST_STAMP) -nt uv.lock ]; then touch $@; \
	else $(call SYNC,the run's packages,$(RUN_SET),$@); fi

$(TEST_STAMP): pyproject.toml uv.lock
	@$(call SYNC,the run's and the tests' packages,$(TEST_SET),$@)

# The interpreter that builds .venv (tests/unit/test_makefile.py checks it is never the venv's own).
bootstrap-python:
	@echo $(BOOTSTRAP_PYTHON)

# The flow runs in a session of its own: Ctrl-C stops it within seconds, DVC consistent (flows/interruption.py).
run: $(RUN_STAMP)
	$(PY) -m flows.lesson2
	@echo
	@echo "Submission: data/submission/submission.csv   receipt: data/submission/receipt.json"
	@echo "Model:      models/head.keras                 features: data/features/"
	@$(PY) -m dvc metrics show

# Lint first: it takes a second, the suite about 17.5 minutes on 2 cores (785 tests). CI (.ci/run) runs this target.
test: lint
	$(PY) -m pytest -q

# Lint and the fast tier alone (tests/unit): under a minute, for the edit-test loop.
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

# ruff, configured in pyproject.toml: lint findings, then code `ruff format` would change (fix: `ruff format .`).
lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

dag: $(RUN_STAMP)
	$(PY) -m dvc dag

# The learning curves, learning rate, confusion matrix and pictures as one page, dvc_plots/index.html, that draws with
# no network: DVC's own page loads Vega from a CDN (tasks/plots/offline_page.py inlines it from the venv instead).
plots: $(RUN_STAMP)
	$(PY) -m tasks.plots.offline_page

# The course's class folders (data/organized/train/cats, ...) copied out of the photo store data/photos.zip, to look
# at: no stage reads them and DVC does not track them (tasks/photos/browse.py).
browse: $(RUN_STAMP)
	$(PY) -m tasks.photos.browse

# Issue 7's figures, measured side by side in one run (7.5 min on 2 idle cores): bench/RESULTS.md. On the real photos at
# ../shared/data/real-sample when that is there, else synthetic ones. `python -m bench.run --quick`: a smoke run.
bench: $(TEST_STAMP)
	PYTHONPATH=. $(PY) -m bench.run

# Needs the network. Keras and the two of its needs that the device tool's H200 image lacks (it has JAX with CUDA, no
# TensorFlow), as CPython 3.12 wheels in .whl/, at uv.lock's versions: carry .whl there and run `bash bench/gpu.sh`.
gpu-wheels:
	$(BOOTSTRAP_PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

remote-check: $(RUN_STAMP)
	$(PY) -m tasks.remote.check
