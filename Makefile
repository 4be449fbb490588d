# Two entry points (see README): `make all` sets up and runs the default workflow,
# `make test` sets up and runs the test suite. Both create .venv themselves.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all test setup bench clean-results

all: $(STAMP)
	$(BIN)/snakemake --cores 2 all

test: $(STAMP)
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

bench: $(STAMP)
	$(BIN)/python benchmarks/topk_op.py
	$(BIN)/python benchmarks/model_cost.py

clean-results:
	rm -rf results/*/ data/ logs/ .snakemake/
