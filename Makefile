# Everything bootstraps from nothing but python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test lint typecheck docs demo bench clean

all: test

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

LINT_PATHS := $(wildcard clerkguard tests examples benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict clerkguard

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .site

test: lint docs
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m clerkguard demo --examples examples

bench: $(STAMP)
	$(BIN)/python benchmarks/verify.py

clean:
	rm -rf $(VENV) .site .pytest_cache .mypy_cache .ruff_cache
