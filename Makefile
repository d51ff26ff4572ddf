# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test demo lint

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
	$(BIN)/python -m airflow_outamation.demo
