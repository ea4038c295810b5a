# Two entry points, each creating the environment (.venv, Python 3.11) when missing:
#   make demo   pretrain on the embedded synthetic data, then compare probes with a random encoder
#   make test   run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-slow env

env: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: env
	$(PY) -m clmr_lib.demo

test: env
	$(PY) -m pytest -q

test-slow: env
	$(PY) -m pytest -q -m slow
