# One command to install and run, one to test. Both create the virtual environment from the
# lock file (constraints.txt) on first use; it is rebuilt when the lock or pyproject changes.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
LOCK_HASH := $(shell cat constraints.txt pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)

# No telemetry, no network from kedro; the project's logging config.
export DO_NOT_TRACK := 1
export KEDRO_DISABLE_TELEMETRY := 1
export KEDRO_LOGGING_CONFIG := $(CURDIR)/conf/logging.yml

.PHONY: help install demo-data run test lint bench lock clean-data

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## Create .venv from the lock file (constraints.txt)

demo-data: install  ## Generate the demo dataset into data/01_raw unless a manifest exists
	@if [ -f data/01_raw/manifest.csv ]; then \
		echo "data/01_raw/manifest.csv exists: keeping it (make clean-data to regenerate)"; \
	else $(BIN)/kedro run --pipelines demo_data; fi

run: demo-data  ## Install, make demo data if needed, and run the default (training) pipeline
	$(BIN)/kedro run

test: lint  ## Lint, then run the test suite
	$(BIN)/python -m pytest

lint: install  ## ruff check (pyproject's rules, unused noqa comments included)
	$(BIN)/ruff check src tests benchmarks

bench: install  ## Run the benchmarks (prints ratios measured in the same run)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lock:  ## Re-resolve the lock file from pyproject.toml (needs a fresh venv)
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade "pip>=24"
	.venv-lock/bin/python -m pip install --quiet -e ".[dev]"
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^deepfake.kedro' > constraints.txt
	rm -rf .venv-lock

clean-data:  ## Delete generated data under data/ (keeps the folder layout)
	find data -type f ! -name .gitkeep -delete
