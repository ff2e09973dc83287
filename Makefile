PYTHON ?= python3

.PHONY: compile debug annotate test bench lint clean

compile:
	$(PYTHON) setup.py build_ext --inplace

debug:
	EASYRAFT_CYTHON_TRACE=1 EASYRAFT_CYTHON_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

annotate:
	EASYRAFT_CYTHON_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

test: compile
	$(PYTHON) -m pytest -q tests

bench: compile
	$(PYTHON) -m pytest -q benchmarks --benchmark-only

lint:
	$(PYTHON) -m ruff check easyraft tests benchmarks
	$(PYTHON) -m mypy easyraft

clean:
	rm -rf build easyraft/_core/*.c easyraft/_core/*.so easyraft/_core/*.html .mypy_cache .ruff_cache
