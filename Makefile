# Two commands for a newcomer: `make run` (the whole service) and `make test` (the whole test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test system-deps clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# What the tests need from the OS: redis-server (our own throwaway instances), Chromium (dashboard tests).
system-deps:
	@command -v redis-server >/dev/null && command -v chromium >/dev/null && command -v tinyproxy >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      redis-server chromium tinyproxy >/dev/null; }

test: $(VENV)/.installed system-deps
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .cache
