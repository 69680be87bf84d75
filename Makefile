# Two entry points do all set-up on a fresh machine:
#   make train   creates .venv if absent, installs seqmodels with pinned versions, trains the default experiment
#   make test    same set-up, then runs the test suite
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.seqmodels-installed
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[datasets,sweeps,dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/seqmodels-train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) logs .pytest_cache
