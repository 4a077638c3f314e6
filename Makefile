# Two commands on a fresh machine: `make run` (install, data, training flow) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RAW := data/raw/dataset.csv
# See components/__init__.py: OpenMP spin-waiting makes concurrent fits many times slower on few cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test install data lint format ui repro ablation clean help

help:
	@echo "make run     create .venv, install, fetch the data, run the Prefect training flow"
	@echo "make test    run the test suite (installs first)"
	@echo "make data    (re)fetch the raw dataset into data/raw/ (TRACKS_CSV=path or download)"
	@echo "make repro   reproduce the DVC pipeline (dvc repro)"
	@echo "make ui      MLflow UI on http://127.0.0.1:5000 against the local store"
	@echo "make ablation  feature-group ablation table (reports/ablation.md)"
	@echo "make lint    ruff"

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

$(RAW): | $(BIN)/.installed
	$(BIN)/trackflow fetch-data

data: install
	$(BIN)/trackflow fetch-data

run: install $(RAW)
	$(BIN)/trackflow run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --host 127.0.0.1 --port 5000

# dvc runs each stage's `trackflow ...` command, so the venv's bin goes first on PATH.
repro: install $(RAW)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Feature-group ablation on the outputs of the last run (reports/ablation.md).
ablation: install
	$(BIN)/trackflow ablation

clean:
	rm -rf data reports mlflow/mlflow.db mlflow/artifacts .pytest_cache .ruff_cache
