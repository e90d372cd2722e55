# One command runs every check (`make test`); CI runs exactly that.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build; a bare requirement would pull GBs of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	# ray: ~17 s and ~240 MB; the backend parity test (tests/planning) needs it
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

demo: $(STAMP)
	$(VENV)/bin/surge run scenarios/feb8_outage.yaml --out runs/feb8_outage

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
