# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: run test test-js test-embedded test-external bench lint proto install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	@echo "dashboard on http://$(HOST):$(PORT)/  (FLOWS_BROKERS=$${FLOWS_BROKERS:-embedded})"
	PORT=$(PORT) FLOWS_LISTEN_HOST=$(HOST) $(VENV)/bin/daphne -b $(HOST) -p $(PORT) dashboard.asgi:application

lint: install
	$(VENV)/bin/ruff check .

# Embedded defaults (SQLite, in-memory layer) plus every real-broker test, then the
# platform tests again on PostgreSQL and channels-redis.
test: lint test-js test-embedded test-external

# The browser's pure modules (run-model.js against flows/tests/fixtures/summary, the same
# files the Python summary tests read), with Node's own runner: no npm packages.
test-js:
	node --test static/js/tests/*.test.mjs

test-embedded: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-external: install
	DATABASE_URL=$(PG_URL) DB_CONN_MAX_AGE=0 REDIS_URL=$(REDIS_URL) $(PY) -m pytest -q -m stack $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

# Regenerates flows/grpc_gen/ from protos/*.proto with the pinned grpcio-tools
# (flows/grpc_codegen.py); flows/tests/test_grpc_codegen.py fails while it is stale.
proto: install
	$(PY) -m flows.grpc_codegen

clean:
	rm -rf $(VENV) db.sqlite3* var
