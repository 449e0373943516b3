PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

# Tests that start several JAX processes of their own run alone, after the rest: on 2 cores a busy neighbour can
# delay one process past gloo's 30 s rendezvous.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not multihost" tests
	$(PY) -m pytest -q -m multihost tests

bench: $(STAMP)
	$(PY) benchmarks/data.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) runs
