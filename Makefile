# Two commands do all the set-up on a fresh machine:
#   make demo   — install, run the service on its defaults, show a remediation happen
#   make test   — install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo serve test test-fast check lint typecheck clean

$(BIN)/remediator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/remediator
	$(BIN)/python scripts/demo.py

serve: $(BIN)/remediator
	$(BIN)/remediator serve

# Workers for `test-fast`. The whole suite stays serial for now: on four workers it took
# 13 minutes instead of 24, but one in-process SQLite test met a database without its
# tables once (issue 30, not yet understood), and CI must not guess.
TEST_WORKERS ?= 4

test: $(BIN)/remediator
	$(BIN)/pytest --durations=25

# The inner loop: unit and integration tests on SQLite, on several workers.
test-fast: $(BIN)/remediator
	$(BIN)/pytest -n $(TEST_WORKERS) tests/unit tests/integration -k "not postgresql"

lint: $(BIN)/remediator
	$(BIN)/ruff check app tests scripts bench
	$(BIN)/ruff format --check app tests scripts bench

typecheck: $(BIN)/remediator
	$(BIN)/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) remediator.db remediator.db-wal remediator.db-shm
