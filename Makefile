# recon developer tasks. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup chromium test test-fast lint arch demo bench bench-callouts clean check-dist same-outputs screenshots

# The venv is rebuilt when the declared or pinned dependencies change.
# uv installs the pinned set in seconds (pip takes about 90 s on 2 cores); if uv cannot be
# installed or fails, pip installs the same pinned set. --compile-bytecode writes the .pyc
# files at install time, as pip does: uv skips them by default, and where
# PYTHONDONTWRITEBYTECODE is set (CI here) every process would then compile Great Expectations,
# polars' Python layer etc. from source on each start (~7 s per process on 2 cores).
INSTALL := -c constraints.txt -e '.[dev]' -e ./sandbox
$(VENV)/.installed: pyproject.toml sandbox/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	{ $(BIN)/pip install -q -c constraints.txt uv && $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(INSTALL); } \
	  || $(BIN)/pip install -q $(INSTALL)
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check .

# Headless Chromium for the report tests (Debian's package): installed only when it is
# missing and this machine can (root with apt-get); otherwise the tests say why they skip
# (under CI=true they fail instead).
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium for the report tests (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1 \
	    || echo "could not install chromium; the report's browser tests will say so"; \
	fi

# The suite runs on pytest-xdist workers (tests/conftest.py gives each its own PostgreSQL
# database, temporary directories and TCP port range). --dist loadfile keeps every test file on
# one worker, so a module-scoped fixture (a generated tenant, the demo, a report's three runs) is
# built once, not once per worker. `make test TEST_WORKERS=0` runs it serially.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The floors (.importlinter, docs/architecture.md "Architecture"): an upward import, or production code
# importing the sandbox or the tests, fails here. tests/test_architecture.py proves it can fail.
arch: setup
	$(BIN)/lint-imports --no-cache --no-logo

test: setup chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(PYTEST) --durations=10

# The inner loop: everything but the tests marked slow (under 2 minutes on 2 cores).
test-fast: setup
	$(PYTEST) -m "not slow"

demo: setup
	$(BIN)/recon demo

# README's pictures of the drift report (docs/report-*-1400.png): a small generated tenant's
# report in headless Chromium at 1,400 px, optimised losslessly, each under 300 KB.
screenshots: setup chromium
	$(BIN)/python tools/screenshots.py

bench: setup
	$(BIN)/python bench/run.py

# The callouts bench alone (receiver throughput, callout → local latency; PostgreSQL), 3-5 min.
bench-callouts: setup
	$(BIN)/python bench/run.py --only callouts

# The backfill bench alone at a small size (generate, extract, the 1% drift's nightly plan, a
# backfill into an empty PostgreSQL database); BACKFILL_ACCOUNTS=100000 for the issue's figure.
BACKFILL_ACCOUNTS ?= 300
bench-backfill: setup
	$(BIN)/python bench/run.py --accounts $(BACKFILL_ACCOUNTS) --only backfill

clean:
	rm -rf $(VENV) data/

# Mutation run (issue 13): Python and SQL mutants of the normalisation, derivation and rule
# modules, each running only the tests that cover it; never part of `make test`.
# Options: make mutate MUTATE_ARGS="--seed 7 --sample-sql 300" (see mutate/README.md).
.PHONY: mutate
mutate: setup
	$(BIN)/pip install -q -c constraints.txt -e '.[mutate]'
	$(BIN)/python -m pytest -q -p no:cacheprovider mutate/test_mutators.py
	$(BIN)/python -m mutate $(MUTATE_ARGS)

# recon's wheel and a plain `pip install .` carry no sandbox (issue 14): builds the wheel, installs
# recon alone in a fresh virtualenv, imports the stages there and checks `recon sandbox` and
# `recon demo` refuse with exit 2. Slow (a fresh venv); never part of `make test`.
check-dist: setup
	$(BIN)/python tools/check_dist.py

# Same inputs, same outputs: the base revision and this tree each reconcile, plan and report one
# copied snapshot; prints identical/different per artefact. make same-outputs BASE=<rev>
BASE ?= db52a1d
same-outputs: setup
	$(BIN)/python tools/same_outputs.py --base $(BASE)
