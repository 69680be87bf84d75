# Two entry points do all set-up on a fresh machine:
#   make train   creates .venv if absent, installs seqmodels with pinned versions, trains the default experiment
#   make test    same set-up, then the lint gate (ruff) and the test suite, in parallel on every core
#   make test-isa  reruns the tests that assert learned figures under three CPU kernel choices
#   make lint    ruff check and ruff format --check
#   make system-data  installs the Debian packages that ship data (espeak-ng, fortunes, kaptive-data,
#                bowtie2-examples); never fatal (make test runs it; make espeak is the same)
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.seqmodels-installed
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=
# One pytest worker per core, one torch thread per worker: 2 workers on 2 cores beat 1 worker with 2 threads.
PYTEST_WORKERS ?= auto
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: install train test test-isa lint clean espeak system-data

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[datasets,sweeps,export,serve,video,parquet,dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/seqmodels-train $(ARGS)

test: lint system-data
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# A chaotic training run lands elsewhere when torch, oneDNN or MKL pick other kernels (another CPU does that).
# The tests marked `learns` must pass under each choice these builds can be forced to make: ATen's vector ISA
# (ATEN_CPU_CAPABILITY), oneDNN's (ONEDNN_MAX_CPU_ISA, used by the RNN kernels) and MKL's (MKL_ENABLE_INSTRUCTIONS,
# which changes MKL's kernels on Intel CPUs; on AMD CPUs MKL already takes its AVX2 path).
ISA_SETTINGS := default \
	"ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" \
	"ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2"
test-isa: $(STAMP) espeak
	@for setting in $(ISA_SETTINGS); do \
		vars=$$([ "$$setting" = default ] || echo "$$setting"); \
		echo "== $$setting: torch uses $$(env $$vars $(BIN)/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')"; \
		env $$vars $(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m learns -q $(PYTEST_ARGS) || exit 1; \
	done

# espeak-ng synthesises the spoken_digits data. Installed with apt-get when missing (sudo unless root); where that
# cannot be done, the tests that need it are skipped.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo "sudo -n")
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
espeak: system-data

# Debian packages that ship data sets (nothing is downloaded at run time): espeak-ng (spoken digits), fortunes
# (topic classification), kaptive-data (annotated GenBank capsule loci) and bowtie2-examples (lambda phage genome).
# Never fatal: the tests that need a missing package are skipped, and its experiments stop with one line.
SYSTEM_PACKAGES := espeak-ng fortunes kaptive-data bowtie2-examples
system-data:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
		$(APT) install -y -qq $$missing >/dev/null 2>&1 || \
		{ $(APT) update -qq >/dev/null 2>&1 && $(APT) install -y -qq $$missing >/dev/null 2>&1; } || true; \
	fi; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo "$$p unavailable: the tests that need it will be skipped"; done

clean:
	rm -rf $(VENV) logs .pytest_cache
