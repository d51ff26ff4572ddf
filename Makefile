# The README's commands: `make demo`, `make test` and `make dist`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test demo lint dist

# Bytecode is compiled at install, as pip does by default (uv does not; with PYTHONDONTWRITEBYTECODE set
# nothing would ever write it): every Airflow task process imports Airflow and parses the DAG file.
$(BIN)/.installed: pyproject.toml .ci/constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c .ci/constraints.txt -e ".[test]"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib airflow_outamation >/dev/null
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_outamation

test: $(BIN)/.installed
	$(BIN)/python -m pytest -ra

demo: $(BIN)/.installed
	$(BIN)/python -m outamation_testbed.demo

# The sdist and wheel in dist/ (the wheel holds airflow_outamation only: no test bed, demo or benchmarks).
dist: $(BIN)/.installed
	rm -rf dist
	$(BIN)/uv build --quiet --out-dir dist
