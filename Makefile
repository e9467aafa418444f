# The two commands of the README, each doing its own set-up into .venv:
#   make demo   end-to-end demo on embedded defaults (local Ray, local files, local MLflow store)
#   make test   the whole test suite (unit + integration, slow ones included)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast test-acceptance lint bench local-up local-down local-e2e clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,onnx]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m jobs.demo

# Two workers by default: run serially on two cores the slow tests leave the CPUs 53 % idle
# (process start-ups, a killed node's detection, retries), which the other worker's tests fill.
# TEST_WORKERS=0 runs serially. The scopes (a module, or tests/cluster) are in tests/conftest.py.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

test: $(STAMP)
	$(PY) -m pytest -q --timeout=900 --durations=25 $(XDIST)

# serial: the unit tests took 100 s with two workers against 94 s in one process (2026-12-08)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-acceptance: $(STAMP)
	$(PY) -m pytest -q -s -m acceptance

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/model_bench.py
	$(PY) benchmarks/loader_bench.py
	$(PY) benchmarks/ingest_bench.py
	$(PY) benchmarks/ddp_bench.py

# ingest -> train (-> tune) on a local head + decode/train nodes, data/checkpoints/MLflow in S3
local-e2e: $(STAMP)
	$(PY) -m infra.local.e2e

clean:
	rm -rf demo_output .pytest_cache
