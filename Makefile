# recon developer tasks. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup chromium test lint demo bench clean

# The venv is rebuilt when the declared or pinned dependencies change.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
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

test: setup chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/recon demo

bench: setup
	$(BIN)/python bench/run.py

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
