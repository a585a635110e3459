# Two commands do all the set-up on a fresh machine:
#   make demo   — install, run the service on its defaults, show a remediation happen
#   make test   — install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo serve test test-fast check lint typecheck docs clean

$(BIN)/remediator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/remediator
	$(BIN)/python scripts/demo.py

serve: $(BIN)/remediator
	$(BIN)/remediator serve

# Test workers: more than this machine's 2 cores, since most tests wait (on a playbook's
# start, a server, a poll) rather than compute. Tests marked `serial` (timings, memory,
# the demo's fixed port) run afterwards with the machine to themselves.
TEST_WORKERS ?= 4
# The end-to-end tests start real services, kill them and count what they did: three at
# a time on two cores (they use 92 % of both so; at four a loaded machine stretched
# their waits past the timings they assert).
E2E_WORKERS ?= 3

test: $(BIN)/remediator
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not e2e and not serial" --durations=10
	$(BIN)/pytest -n $(E2E_WORKERS) -m "e2e and not serial" --durations=25
	$(BIN)/pytest -m serial --durations=10

# The inner loop: unit and integration tests on SQLite, on several workers.
test-fast: $(BIN)/remediator
	$(BIN)/pytest -n $(TEST_WORKERS) -m "(unit or integration) and not serial" -k "not postgresql"

lint: $(BIN)/remediator
	$(BIN)/ruff check app tests scripts bench
	$(BIN)/ruff format --check app tests scripts bench

typecheck: $(BIN)/remediator
	$(BIN)/mypy

check: lint typecheck

# The docs, strictly: a broken link, a page left out of the nav or a reference that no
# longer generates fails. (Material's notice about its successor is not ours to show.)
docs: $(BIN)/remediator
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .site

clean:
	rm -rf $(VENV) .site remediator.db remediator.db-wal remediator.db-shm
