# Two commands for a new user: `make run` and `make test`. Each builds .venv from uv.lock when missing.
SHELL := /bin/bash
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test dag clean-outputs

$(VENV)/.synced: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	python3 -m uv sync --frozen --python python3.11
	@touch $@

run: $(VENV)/.synced
	$(PY) -m flows.lesson2
	@echo
	@echo "Submission: data/submission/submission.csv   receipt: data/submission/receipt.json"
	@echo "Model:      models/head.keras                 features: data/features/"
	@$(PY) -m dvc metrics show

test: $(VENV)/.synced
	$(PY) -m pytest -q

dag: $(VENV)/.synced
	$(PY) -m dvc dag

.PHONY: remote-check
remote-check: $(VENV)/.synced
	$(PY) -m tasks.remote_check
