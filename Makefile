# The two set-up commands of the README: `make bench` (the main job) and `make test`.
# Each installs what it needs (system packages when missing, then the package) and is idempotent.
PYTHON ?= python3
BENCH_OUT ?= runs/bench

.PHONY: install test lint bench perf

install:
	./scripts/install-system-deps.sh
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[dev]"

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: install lint
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m hiergym.cli bench --agents random,oracle --suite smoke --out $(BENCH_OUT)

perf: install
	$(PYTHON) -m hiergym.benchmarks.perf all
