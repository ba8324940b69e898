# IOC analytics: `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Airflow runs from this checkout: its home, DAGs and plugins all live here (git-ignored home).
export AIRFLOW_HOME := $(CURDIR)/airflow_home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: help venv test test-fast lint demo airflow lock clean

help:
	@echo "make demo       create the environment, generate a sample lake, run the daily DAG locally"
	@echo "make test       create the environment and run every test (what CI runs)"
	@echo "make airflow    start Airflow locally (standalone: UI on http://localhost:8080), local backend"
	@echo "make test-fast  unit and DAG-integrity tests only (no moto server, no DAG runs)"
	@echo "make lint       ruff, including Airflow 3 rules"
	@echo "make lock       re-resolve requirements*.lock from requirements*.txt"
	@echo "make clean      remove the environment, generated data and the Airflow home"

# The environment is exactly the lock: every transitive version pinned and hash-checked.
$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

venv: $(STAMP)

# Two pytest workers (pytest-xdist), each taking a whole test file at a time, so that a file's
# module fixtures are built once. TEST_WORKERS=0 runs in one process. Files go out in collection
# order, the slowest first (tests/conftest.py), not re-sorted by their number of tests.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

airflow: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/airflow.sh

# Needs the package registry; uv only resolves, pip installs.
lock: $(STAMP)
	$(BIN)/pip install --quiet uv==0.13.9
	$(BIN)/uv pip compile requirements.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile requirements-dev.txt -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements-dev.lock

clean:
	rm -rf $(VENV) data airflow_home .pytest_cache .ruff_cache
