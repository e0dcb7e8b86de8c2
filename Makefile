# gingham: developer entry points. Every target installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Every package the venv gets, runtime + dev + bench + the build backend, pinned with
# hashes for CPython 3.11 on Linux. `make lock` regenerates it keeping the pinned
# versions; `make lock LOCK_ARGS=--upgrade` moves to the newest the ranges allow.
# RUNTIME_LOCK: the runtime dependencies alone, at the same versions, for hosts
# (docs/INSTALL.md).
LOCK := requirements/lock.txt
RUNTIME_LOCK := requirements/runtime.txt
LOCK_ARGS ?=
UV_VERSION := 0.13.9

.PHONY: deps venv lock test unit lint typecheck demo bench bench-quick clean

deps:
	bash .ci/install-deps

# The lock alone decides versions (--require-hashes refuses anything unpinned or
# unhashed); gingham itself goes in after, without dependencies or a build download.
$(VENV)/.installed: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes -r $(LOCK)
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

# uv in a throwaway venv: the tool is not one of the project's dependencies.
lock:
	tool=$$(mktemp -d) && trap 'rm -rf "$$tool"' EXIT && \
	python3 -m venv "$$tool" && "$$tool/bin/pip" install -q "uv==$(UV_VERSION)" && \
	"$$tool/bin/uv" pip compile pyproject.toml requirements/build.in --extra dev --extra bench \
	    --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	    --custom-compile-command "make lock" --quiet -o $(LOCK) $(LOCK_ARGS) && \
	"$$tool/bin/uv" pip compile pyproject.toml -c $(LOCK) \
	    --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	    --custom-compile-command "make lock" --quiet -o $(RUNTIME_LOCK)

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
