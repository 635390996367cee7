.PHONY: check lint types test examples bench

PY ?= .venv/bin/python

check: lint types test

lint:
	$(PY) -m ruff format --check wfc tests examples benchmarks
	$(PY) -m ruff check wfc tests examples benchmarks

types:
	$(PY) -m mypy wfc tests

test:
	$(PY) -m pytest

examples:
	for f in examples/*/*.wf; do .venv/bin/wfc compile "$$f" || exit 1; done

bench:
	$(PY) benchmarks/compile_time.py
