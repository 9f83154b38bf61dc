# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run dev test install install-dev lint typecheck pytest test-postgres migrate demo demo-reset bench prove

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate pyproject.toml requirements.lock
	$(PIP) install --quiet -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

# Starts the web server and the background worker together; Ctrl-C stops both.
# `make run` serves with gunicorn (src/config/gunicorn.conf.py), as production does;
# `make dev` with Django's runserver, which reloads when the code changes. PORT also sets
# SITE_URL's default, so emailed links (the demo's included) point at the port served.
run: migrate
	@PORT=$(PORT) $(PY) manage.py load_demo
	@# WhiteNoise serves var/static (with DEBUG off it no longer looks in the apps).
	@$(PY) manage.py collectstatic --noinput -v0
	@echo "Client area: http://$(HOST):$(PORT)/   back office: http://$(HOST):$(PORT)/admin/"
	@PORT=$(PORT) $(PY) manage.py run_all $(HOST):$(PORT)

dev: migrate
	@PORT=$(PORT) $(PY) manage.py load_demo
	@echo "Client area: http://$(HOST):$(PORT)/   back office: http://$(HOST):$(PORT)/admin/"
	@PORT=$(PORT) $(PY) manage.py run_all --dev $(HOST):$(PORT)

demo-reset:
	rm -f var/clientarea.sqlite3 var/clientarea.sqlite3-wal var/clientarea.sqlite3-shm

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py access_table --check

typecheck: install-dev
	$(VENV)/bin/mypy src

# The suite runs on both cores (pytest-xdist: PYTEST_WORKERS processes, each with its own
# test database; CI machines have 2 cores). PYTEST_ARGS is passed on and comes last, so it
# can override that; one test, serially (e.g. to use a debugger):
#   make pytest PYTEST_ARGS="-n0 -k foo"
PYTEST_WORKERS ?= 2

pytest: install-dev
	@test -x /usr/bin/chromium || command -v chromium >/dev/null || \
	  echo "NOTE: Chromium is not installed: the real-browser tests will be SKIPPED (apt-get install chromium)."
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --durations=25 $(PYTEST_ARGS)

# mypy checks on one core (about 90 s from a clean clone), so it runs beside lint and the
# suite rather than before them (on 2 cores the other one waited). Its output is printed
# once they are done; any of them failing fails `make test`.
test: install-dev
	@log="$$(mktemp)"; \
	$(MAKE) --no-print-directory typecheck >"$$log" 2>&1 & typecheck=$$!; \
	status=0; $(MAKE) --no-print-directory lint pytest || status=$$?; \
	wait $$typecheck || { [ "$$status" != 0 ] || status=1; }; \
	cat "$$log"; rm -f "$$log"; exit $$status

test-postgres: install-dev
	bash .ci/postgres-tests

# Page latency, query counts and memory at 10 vs 5,000 invoices; outbox throughput;
# the API's lists at 10 vs 5,000 objects of each kind (query counts must not grow).
bench: install-dev
	$(PY) bench/bench_pages.py
	$(PY) bench/bench_api.py

# Throughput (issue 15): requests per second of each logged-in page and API list under
# gunicorn (as `make run`), against the bare-Django floor of bench/floor/, in one run.
.PHONY: bench-throughput
bench-throughput: install-dev
	$(PY) bench/bench_throughput.py

# Scale (issue 15, P3): 100,000 accounts and 1,000,000 invoices on a throwaway PostgreSQL
# cluster (or DATABASE_URL); page latency of a 20,000-invoice account against a
# 1,000-invoice one, and EXPLAIN of every query those pages run. Takes tens of minutes.
.PHONY: bench-scale
bench-scale: install-dev
	$(PY) bench/bench_scale.py

# Outbox under failure (issue 15, P5): 10,000 emails, 3 worker processes, a real SMTP
# server (aiosmtpd) stopped and restarted mid-run, one worker SIGKILLed mid-batch, on a
# throwaway PostgreSQL cluster (or DATABASE_URL): lost, duplicates, mails/s per worker.
.PHONY: bench-outbox
bench-outbox: install-dev
	$(PY) bench/bench_outbox_failure.py

# Load and memory (issue 15): 50 simulated customers (Locust, headless) log in, browse, pay
# and open tickets for 2 minutes against gunicorn (production's settings, DEMO_MODE for the
# stand-ins) and a throwaway PostgreSQL cluster (or DATABASE_URL); p50/p95/p99 and errors
# per page, requests/s, peak RSS of every gunicorn worker and of the background worker.
# Locust is heavy: only this target installs it (pyproject's `bench` extra).
$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PIP) install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $@

.PHONY: bench-load
bench-load: $(VENV)/.installed-bench
	$(PY) bench/bench_load.py

# The access model (issue 17): every action sequence of the model, every invariant after
# every step (make test runs depth 5). Both accounts to depth 6, one account with logins
# given elsewhere to depth 8, which proves every sequence of 8 steps on both accounts
# (src/acceptance/model/compose.py: the accounts stand alone, checked on the way); then
# rewrites docs/access.md's "What is proven" from the counts (make test fails when that
# section is older than the model). `prove.py --from-saved` writes the section again
# from the last explorations of the same model (a new conformance paragraph).
#
# First the model is replayed on the real app (conformance), split between
# CONFORMANCE_SHARDS processes side by side (one per core): every distinct state to
# CONFORMANCE_DEPTH (both accounts acting) and to CONFORMANCE_ONE_ACCOUNT_DEPTH (account
# A0 acting, logins given elsewhere), then CONFORMANCE_WALKS random sequences of
# CONFORMANCE_WALK_LENGTH actions from CONFORMANCE_SEED; the shards' counts, merged, make
# its paragraph of the section. About 25 ms of CPU a state: some 55 minutes of CPU for
# the 130,000 states below.
CONFORMANCE_DEPTH ?= 4
CONFORMANCE_ONE_ACCOUNT_DEPTH ?= 6
CONFORMANCE_WALKS ?= 300
CONFORMANCE_WALK_LENGTH ?= 10
CONFORMANCE_SEED ?= 17
CONFORMANCE_SHARDS ?= 2
prove: install-dev
	mkdir -p var
	rm -f var/conformance-*.json
	status=0; pids=""; \
	for i in $$(seq 0 $$(($(CONFORMANCE_SHARDS) - 1))); do \
	  CONFORMANCE_SHARD=$$i/$(CONFORMANCE_SHARDS) CONFORMANCE_SUMMARY=var/conformance-$$i.json \
	  CONFORMANCE_DEPTH=$(CONFORMANCE_DEPTH) CONFORMANCE_WALKS=$(CONFORMANCE_WALKS) \
	  CONFORMANCE_ONE_ACCOUNT_DEPTH=$(CONFORMANCE_ONE_ACCOUNT_DEPTH) \
	  CONFORMANCE_WALK_LENGTH=$(CONFORMANCE_WALK_LENGTH) CONFORMANCE_SEED=$(CONFORMANCE_SEED) \
	  nice $(VENV)/bin/pytest -q -n0 -s -p no:logging -p no:cacheprovider \
	    src/acceptance/model/tests/test_conformance.py::test_the_app_answers_what_the_model_predicts & \
	  pids="$$pids $$!"; \
	done; \
	for pid in $$pids; do wait $$pid || status=1; done; exit $$status
	nice $(VENV)/bin/pytest -q -n0 -p no:logging src/acceptance/model/tests/test_conformance_mutations.py
	PYTHONPATH=src $(PY) -m acceptance.model.conformance_stats var/conformance.md var/conformance-*.json
	PYTHONPATH=src nice $(PY) -m acceptance.model.prove --extra-file var/conformance.md
