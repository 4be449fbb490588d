# Two entry points (see README): `make all` sets up and runs the default workflow,
# `make test` sets up and runs the test suite. Both create .venv themselves.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all test test-fast setup bench mutation pull clean-results paper-smoke

all: $(STAMP)
	$(BIN)/snakemake all --cores 2

# The paper configuration's whole DAG, offline, on this machine: a miniature ImageNet, every download
# served from 127.0.0.1, only counts shrunk (config/paper-smoke.yaml); then every output is checked.
# Needs the paper's published files and model-vs-human's raw data (../shared/ beside the checkout, or
# TOPKSHAPE_PAPER_DATA and TOPKSHAPE_MODEL_VS_HUMAN).
paper-smoke: $(STAMP)
	$(BIN)/python -m topkshape.smoke

# Two xdist workers, one test file each at a time, longest files first (tests/conftest.py): the 2 cores
# stay busy while the paper smoke run takes one worker. TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	TOPKSHAPE_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -q --durations=30 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The suite without the tests marked `slow` (workflow and DVC runs, training, SLURM, the paper smoke
# run, the docs build): a few minutes on 2 cores, for while you work. CI runs `make test`, all of it.
test-fast: $(STAMP)
	TOPKSHAPE_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -q -m "not slow"

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

# Mutation testing of the core modules (slow: not part of `make test` or CI). Scores per module;
# MUTATION_ARGS="--groups table1 ops" runs some of the groups in pyproject.toml.
mutation: $(STAMP)
	$(BIN)/python -m pip install -q -r requirements-mutation.txt -c requirements-lock.txt
	nice -n 19 $(BIN)/python tools/mutation.py --survivors --scores-out docs/generated/mutation_scores.md $(MUTATION_ARGS)

# A colleague's clone: fetch the shared datasets, models and results, then give each output the
# time its job ended (DVC does not keep mtimes; see README "Sharing results"). The Snakefile does the
# second step itself when it finds pulled job records, so a bare `dvc pull` is safe too.
pull: $(STAMP)
	$(BIN)/python -m topkshape.sharing --pull

clean-results:
	rm -rf results/*/ data/ logs/ .snakemake/
