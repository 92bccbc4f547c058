# The two commands of the README. Each sets up its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/testbed
CONFIG ?= configs/testbed.py

.PHONY: setup demo test clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Pretrains the testbed's base model, runs GRPO, writes $(WORKDIR)/summary.json.
demo: setup
	$(PY) -m launch.train --config $(CONFIG) --workdir $(WORKDIR)

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) workdirs
