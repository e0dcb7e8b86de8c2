# gingham: developer entry points. Every target installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: deps venv test unit lint typecheck demo bench bench-quick clean

deps:
	bash .ci/install-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

test: deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

demo: deps venv
	$(VENV)/bin/gingham lab demo

bench: deps venv
	$(PY) bench/run_all.py

bench-quick: deps venv
	$(PY) bench/run_all.py --quick

# docs/CLI.md from the click definitions (tests/unit/cli/test_docgen.py fails when it is stale)
.PHONY: docs
docs: venv
	$(PY) -m gingham.cli.docgen > docs/CLI.md.new && mv docs/CLI.md.new docs/CLI.md

clean:
	-$(VENV)/bin/gingham lab down --all
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
