# sense_nodes: `make demo` and `make test` set everything up on first use.
VENV := .venv
SENSE := $(VENV)/bin/sense
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test test-fast bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(SENSE) demo

test: setup
	@$(PYTEST) -q -ra

test-fast: setup
	@$(PYTEST) -q -ra -m "not slow"

bench: setup
	@$(SENSE) bench codec --json out/bench_codec.json

clean:
	rm -rf build install log out
