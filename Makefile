# Two commands for a newcomer: `make run` (the whole service) and `make test` (the whole test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: run test test-fast lint system-deps clean bench

# The virtualenv. Debian ships `venv` separately (python3-venv): install it when the first attempt fails.
$(PY):
	@$(PYTHON) -c 'import sys; sys.version_info[:2] == (3, 11) or print("warning: tested on Python 3.11, not", sys.version)'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(SUDO) apt-get update -qq && \
	  $(APT_INSTALL) python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

# Stamps: each re-installs when its requirement files change.
# Runtime requirements only: enough for `make run`.
$(VENV)/.installed-run: requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# Runtime + test tools: what `make test` needs.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The whole service: web + worker (honcho, Procfile) on the file store; with no account configured, the simulator too.
run: $(VENV)/.installed-run
	$(PY) scripts/run_local.py

# What the tests need from the OS: redis-server (our own throwaway instances), Chromium (dashboard tests),
# tinyproxy (proxy tests), wrk (make bench), prometheus (its `prometheus` and `promtool` check monitoring/),
# PostgreSQL (history tests start their own server: initdb + postgres).
# Each is a Debian package of the same name; only the missing ones are installed. Debian keeps PostgreSQL's server
# binaries off PATH (/usr/lib/postgresql/<version>/bin), so the package is detected by that directory.
SYSTEM_DEPS := redis-server chromium tinyproxy wrk prometheus
PG_INITDB := /usr/lib/postgresql/*/bin/initdb
system-deps:
	@missing=$$(for cmd in $(SYSTEM_DEPS); do command -v $$cmd >/dev/null || echo $$cmd; done; \
	  ls $(PG_INITDB) >/dev/null 2>&1 || echo postgresql); \
	  [ -z "$$missing" ] || { $(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; }

test: $(VENV)/.installed system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit loop: every package (core, worker, app REST and /ws, compat, simulator, deploy) without the slow tier
# (`slow`, implied by `drill` and `browser`: fault drills and the worker's fault matrix, live budget windows,
# Chromium, bench runs), in under 90 s on 2 cores. `make test` runs both tiers; so does CI.
test-fast: $(VENV)/.installed system-deps
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# ruff (style, imports, bugbear, pyupgrade) and mypy (core, app, worker), as configured in pyproject.toml.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .cache

# Benchmarks against references measured in the same run (~10 min): bench/results/latest.json, docs/benchmarks.md.
bench: $(VENV)/.installed system-deps
	$(PY) -m bench
