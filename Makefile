# Verbs for day-to-day work; .ci/run is the source of truth for CI.
PY ?= .venv/bin/python

.PHONY: develop annotate test test-pure bench lint typecheck

develop:
	python3 -m venv .venv
	$(PY) -m pip install -q -c requirements/cython.txt -e '.[test,bench]' -r requirements/lint.txt

annotate:
	FASTRENDER_DEBUG=1 FASTRENDER_CYTHON_ALWAYS=1 $(PY) setup.py build_ext --inplace

test:
	$(PY) -m pytest

test-pure:
	FASTRENDER_NO_EXTENSIONS=1 $(PY) -m pytest tests -k "fastrender or render" -p no:cacheprovider

bench:
	$(PY) -m pytest bench --benchmark-enable --benchmark-group-by=group --benchmark-disable-gc

# ruff and mypy come pinned from requirements/lint.txt (make develop installs them).
lint:
	$(PY) -m ruff check gateway bench _fastrender tests
	$(PY) -m ruff format --check gateway bench _fastrender tests

typecheck:
	$(PY) -m mypy --strict
