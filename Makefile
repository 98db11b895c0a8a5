# The two commands a newcomer needs: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-random e2e-report lint format install migrate seed clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_knowledge --verbosity 0

run: seed
	$(BIN)/python manage.py ensure_admin
	@echo "Serving the demo clinic: open http://$(HOST):$(PORT)/ for today's front desk (log in as admin; API docs: /api/docs)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# On the embedded defaults the suite runs on every core (pytest-xdist: one SQLite database and one in-process cache per
# process). On PostgreSQL + Redis it runs in one process: the real-worker and e2e tests share one Redis and start
# their own servers. PYTEST_WORKERS=0 forces one process, PYTEST_WORKERS=N sets N.
PYTEST_WORKERS ?= $(if $(or $(DATABASE_URL),$(REDIS_URL)),0,auto)
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The same suite in a random order (pytest-randomly; the seed is printed: --randomly-seed=N repeats an order).
test-random: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p randomly -m "not e2e" $(PYTEST_ARGS)

# The end-to-end tests (tests/e2e: gunicorn, Celery workers and beat, fake providers) on PostgreSQL and Redis, and
# docs/E2E_TEST_RESULTS.md written from that run. Uses DATABASE_URL / REDIS_URL when set, else CI's local servers.
E2E_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/medspa
E2E_REDIS_URL ?= redis://127.0.0.1:6379/0
e2e-report: install
	DATABASE_URL="$${DATABASE_URL:-$(E2E_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(E2E_REDIS_URL)}" CI=1 \
		E2E_REPORT=docs/E2E_TEST_RESULTS.md $(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
