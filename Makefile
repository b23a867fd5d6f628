# The two set-up commands of the README: `make bench` (the main job) and `make test`.
# Each installs what it needs (system packages when missing, a project virtualenv in .venv, then
# the package) and is idempotent. PYTHON=/path/to/python uses that interpreter instead of .venv.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
BENCH_OUT ?= runs/bench
# torch for the tests (the llm extra takes any torch >= 2.4): this pin is a CPU wheel where one is
# on hand; set TORCH= to choose another build, e.g. TORCH="torch --index-url <a CPU wheel index>".
TORCH ?= torch==2.13.0
PIP_FLAGS = --quiet --disable-pip-version-check

ifdef PYTHON
VENV_STEP :=
else
PYTHON := $(VENV)/bin/python
VENV_STEP := venv
endif

.PHONY: venv install install-bench test lint bench perf

venv:
	@if [ ! -x $(VENV)/bin/python ]; then \
	  SYSTEM_PYTHON=$(SYSTEM_PYTHON) ./scripts/install-system-deps.sh bench && \
	  $(SYSTEM_PYTHON) -m venv $(VENV); \
	fi
	@echo "hiergym: using the project virtualenv $(VENV) ($$($(PYTHON) --version 2>&1)); PYTHON=... to use another"

install-bench: $(VENV_STEP)
	@SYSTEM_PYTHON=$(SYSTEM_PYTHON) ./scripts/install-system-deps.sh bench
	$(PYTHON) -m pip install $(PIP_FLAGS) -e ".[plots]"

install: $(VENV_STEP)
	@SYSTEM_PYTHON=$(SYSTEM_PYTHON) ./scripts/install-system-deps.sh test
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install $(PIP_FLAGS) $(TORCH)
	$(PYTHON) -m pip install $(PIP_FLAGS) -e ".[dev]"

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: install lint
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q

bench: install-bench
	$(PYTHON) -m hiergym.cli bench --agents random,oracle --suite smoke --out $(BENCH_OUT)

perf: install-bench
	$(PYTHON) -m hiergym.benchmarks.perf all
