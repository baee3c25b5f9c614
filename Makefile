# Everything bootstraps from nothing but python3 and make.
# PYTHON and VENV can be overridden together for another interpreter, e.g.
# `make install PYTHON=python3.12 VENV=.venv312` (what `make test-matrix` does).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test test-matrix lint typecheck docs dist demo bench bench-load clean

all: test

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

LINT_PATHS := $(wildcard clerkguard tests examples benchmarks tools)
MYPY_FLAGS ?=

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict $(MYPY_FLAGS) clerkguard

# Not --quiet: it hides warnings from --strict (an unresolved cross-reference would pass).
# The build log is shown only when the build fails; check_site.py then reads the HTML.
docs: $(STAMP)
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site > $(VENV)/mkdocs.log 2>&1 \
		|| { grep -v '^INFO' $(VENV)/mkdocs.log; echo "mkdocs build --strict failed"; exit 1; }
	$(BIN)/python tools/check_site.py .site

# sdist + wheel (python -m build), twine check, then the wheel in a fresh venv:
# imports, plugin, and the docs' quickstart app + tests copied as is (tools/check_dist.py).
dist: $(STAMP)
	$(BIN)/python tools/check_dist.py

test: lint docs dist
	$(BIN)/python -m pytest -q

# Lint (mypy for that version), docs and the test suite on every Python 3.10-3.13 found
# (python3.X on PATH, else pyenv's newest 3.X), one after another, each in its own
# .venv3X. Not part of `make test` (CI runs that once per version). ~5 min per version.
MATRIX_VERSIONS ?= 3.10 3.11 3.12 3.13
test-matrix:
	@failed=""; ran=""; \
	for v in $(MATRIX_VERSIONS); do \
	  py=""; \
	  if python$$v -c '' >/dev/null 2>&1; then py=$$(command -v python$$v); \
	  else py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -1); fi; \
	  if [ -z "$$py" ]; then echo "test-matrix: no Python $$v found, skipped"; continue; fi; \
	  venv=.venv$$(echo $$v | tr -d .); start=$$(date +%s); \
	  echo "test-matrix: Python $$v ($$py) in $$venv"; \
	  if $(MAKE) --no-print-directory lint docs PYTHON=$$py VENV=$$venv MYPY_FLAGS="--python-version $$v" \
	     && $$venv/bin/python -m pytest -q; then ran="$$ran $$v:ok($$(( $$(date +%s) - start ))s)"; \
	  else failed="$$failed $$v"; ran="$$ran $$v:FAILED"; fi; \
	done; \
	echo "test-matrix:$$ran"; \
	if [ -z "$$ran" ]; then echo "test-matrix: no interpreter found"; exit 1; fi; \
	if [ -n "$$failed" ]; then echo "test-matrix: failed on$$failed"; exit 1; fi

demo: $(STAMP)
	$(BIN)/python -m clerkguard demo --examples examples

bench: $(STAMP)
	$(BIN)/python benchmarks/verify.py

# Guarded vs open routes under real servers, loaded by wrk (a Debian package;
# installed here when missing and running as root). LOAD_ARGS=--quick for a
# short pass, e.g. `make bench-load LOAD_ARGS="--quick --frameworks sanic"`.
LOAD_ARGS ?=
bench-load: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
	  else \
	    echo "wrk is not installed: sudo apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS)"; \
	    exit 1; \
	  fi; }
	$(BIN)/python benchmarks/load.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) .site .pytest_cache .mypy_cache .ruff_cache dist build
