# geomask: two commands do everything on a fresh machine.
#   make demo   set up, then build the embedded circuit corpus and print its table
#   make test   set up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	@bash tools/bootstrap.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: setup
	$(VENV)/bin/ruff check geomask tests tools benchmarks
	$(VENV)/bin/ruff format --check geomask tests tools benchmarks

bench: setup
	$(PY) benchmarks/bench_aiger_read.py

clean:
	rm -rf out build .pytest_cache
