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

# Most tests wait on playbooks, terraform and servers rather than compute: more workers
# than cores; the few that need the machine to themselves run after, alone.
TEST_WORKERS ?= 4

test: $(BIN)/remediator
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not serial" --durations=25
	$(BIN)/pytest -m serial --durations=10

# The inner loop: unit and integration tests on SQLite.
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
