# Two commands: `make run` starts the monitor, `make test` runs the linters and the whole test suite.
#
# Other targets: `make lint`, `make fmt`, `make fuzz`, `make bench`, `make compat`,
# `make screenshot`, `make clean`, `make .venv` (or `make venv`).
# Everything runs from the private virtualenv in .venv, created on first use and
# re-installed whenever pyproject.toml changes.

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.example.yaml
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: venv .venv run test lint fmt fuzz bench compat screenshot clean

# --- virtualenv -------------------------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than pyproject.toml once the package and its test extras are installed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $@

venv .venv: $(STAMP)

# --- the two commands -------------------------------------------------------------------------

run: $(STAMP)
	$(BIN)/support-monitor --config $(CONFIG) run

# pytest exits 5 when it collects no tests; make treats that like any other failure.
test: $(STAMP) lint
	$(BIN)/pytest

# --- helpers ----------------------------------------------------------------------------------

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The fuzz suite of hostile input (tests/connectors/test_bad_input.py) with many more examples
# than the few CI runs: minutes, not seconds. FUZZ_PROFILE picks the hypothesis settings it runs
# with.
fuzz: $(STAMP)
	FUZZ_PROFILE=fuzz $(BIN)/pytest tests/connectors/test_bad_input.py -k fails_no_more_than_itself

# Every benchmark (bench/run.py), a table of ratios against their baselines; BENCH_ARGS=--quick
# for the small sizes.
bench: $(STAMP)
	$(BIN)/python bench/run.py --markdown bench/latest.md $(BENCH_ARGS)

# Do real exports load as they are? Runs the connectors on a folder of real files laid out as
# examples/compat/samples.yaml names them (each with the source a user would write), one line
# per file; fails when a file that should load does not, or when a file there has no entry.
SAMPLES ?= $(firstword $(wildcard ../shared/samples ../../shared/samples))
compat: $(STAMP)
	@test -n "$(SAMPLES)" || { echo "make compat SAMPLES=DIR (a folder of real exports)"; exit 2; }
	$(BIN)/python -m monitor.compat "$(SAMPLES)"

# docs/digest.png, the picture in README: the demo's digest drawn by headless Chromium.
screenshot: $(STAMP)
	$(BIN)/python docs/screenshot.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
