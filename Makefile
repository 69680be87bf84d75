# Two entry points do all set-up on a fresh machine:
#   make train   creates .venv if absent, installs seqmodels with pinned versions, trains the default experiment
#   make test    same set-up, then runs the test suite
#   make espeak  installs espeak-ng (Debian package) for the spoken_digits data; never fatal (make test runs it)
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.seqmodels-installed
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test clean espeak

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[datasets,sweeps,export,dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/seqmodels-train $(ARGS)

test: $(STAMP) espeak
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# espeak-ng synthesises the spoken_digits data. Installed with apt-get when missing (sudo unless root); where that
# cannot be done, the tests that need it are skipped.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo "sudo -n")
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
espeak:
	@command -v espeak-ng >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		$(APT) install -y -qq espeak-ng >/dev/null 2>&1 || \
		{ $(APT) update -qq >/dev/null 2>&1 && $(APT) install -y -qq espeak-ng >/dev/null 2>&1; } || true
	@command -v espeak-ng >/dev/null 2>&1 || echo "espeak-ng unavailable: spoken_digits tests will be skipped"

clean:
	rm -rf $(VENV) logs .pytest_cache
