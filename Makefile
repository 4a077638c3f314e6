# Two commands on a fresh machine: `make run` (install, data, training flow) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RAW := data/raw/dataset.csv
# See trackflow/process.py: OpenMP spin-waiting makes concurrent fits many times slower on few cores. Every
# command below, and every process it starts (dvc's stage commands), inherits it.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test test-quick install data lint format ui repro ablation clean help prefect-server serve serve-models explore score monitor simulate dvc-yaml

help:
	@echo "make run     create .venv, install, fetch the data, run the training and discovery flows"
	@echo "make test    run the test suite (installs first): tests/unit, integration, e2e"
	@echo "make test-quick  the unit tier only (under two minutes)"
	@echo "make data    (re)fetch the raw dataset into data/raw/ (TRACKS_CSV=path or download)"
	@echo "make repro   reproduce the DVC pipeline (dvc repro)"
	@echo "make ui      MLflow UI on http://127.0.0.1:5000 against the local store"
	@echo "make ablation  feature-group ablation table (reports/ablation.md)"
	@echo "make discovery  clusters, outliers, similar tracks, playlists, map (reports/discovery/)"
	@echo "make lint    ruff, the import layers (.importlinter), dvc.yaml up to date with trackflow/pipeline.py"
	@echo "make dvc-yaml  regenerate dvc.yaml from the pipeline definition (trackflow/pipeline.py)"
	@echo "make prefect-server  local Prefect server + UI on http://127.0.0.1:4200"
	@echo "make serve   serve the scheduled deployments (training, batch scoring, drift monitoring)"
	@echo "make simulate DRIFT=none|genre_mix|louder|shorter  write an incoming batch from held-out rows"
	@echo "make score   score the batches in data/incoming/ with the champions"
	@echo "make monitor drift report of the latest scored batch (retrains on drift)"
	@echo "make score-audio AUDIO=folder  features of audio files, scored by the champions"
	@echo "make bench   benchmarks in a temporary copy of the project -> BENCHMARKS.md (~30 min on 2 cores)"

install: $(BIN)/.installed

# uv (bootstrapped into the venv with pip) installs the pinned set with pip's package sources; pip is the
# fallback. INSTALL_ARGS=--pip-only forces the fallback.
$(BIN)/.installed: pyproject.toml constraints.txt scripts/install.py
	$(PYTHON) scripts/install.py --venv $(VENV) $(INSTALL_ARGS)
	touch $@

$(RAW): | $(BIN)/.installed
	$(BIN)/trackflow fetch-data

data: install
	$(BIN)/trackflow fetch-data

# Both flows: together they run every stage of dvc.yaml and record it in dvc.lock (`dvc repro` after it
# has nothing to do).
run: install $(RAW)
	$(BIN)/trackflow run
	$(BIN)/trackflow run-discovery

test: install
	$(BIN)/python -m pytest

# The unit tier only (components on built data): under two minutes.
test-quick: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/trackflow dvc-yaml --check

dvc-yaml: install
	$(BIN)/trackflow dvc-yaml

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

# Batch scoring and monitoring (flows/). With a server: PREFECT_API_URL=http://127.0.0.1:4200/api.
prefect-server: install
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

serve: install
	$(BIN)/trackflow serve

# The champions over HTTP on 127.0.0.1:5050 (params.yaml serve): /predict, /invocations, /similar, /playlist.
serve-models: install
	$(BIN)/trackflow serve-models

# The explorer on http://127.0.0.1:8501: prediction, track map, genres, artists, playlists, registry.
explore: install
	$(BIN)/trackflow explore

DRIFT ?= none
simulate: install
	$(BIN)/trackflow simulate-batch --drift $(DRIFT)

score: install
	$(BIN)/trackflow score

monitor: install
	$(BIN)/trackflow monitor

# Audio files -> features -> the champions' predictions (docs/audio_features.md): make score-audio AUDIO=folder
AUDIO ?= ../shared/data/audio
.PHONY: score-audio
score-audio: install
	$(BIN)/trackflow score-audio $(AUDIO)

# Benchmarks (bench/): every section runs in a fresh temporary copy of the project, so data/ and mlflow/ here
# are untouched; writes BENCHMARKS.md and bench/results/. Options: BENCH_ARGS="--only scoring --repeats 5".
.PHONY: bench
bench: install $(RAW)
	$(BIN)/python -m bench --tracks-csv $(RAW) $(BENCH_ARGS)

# Discovery flow (flows/discovery.py): clusters, outliers, similar-track index, playlists, the 2-D map and the
# registered models clusters / outliers / similar-tracks. Prepares features and splits first when missing.
.PHONY: discovery
discovery: install $(RAW)
	$(BIN)/trackflow run-discovery

clean:
	rm -rf data reports mlflow/mlflow.db mlflow/artifacts .pytest_cache .ruff_cache
