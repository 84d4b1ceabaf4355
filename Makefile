# radpipe: two commands do all the set-up on a fresh machine.
#   make demo   the whole pipeline on a synthetic study, on embedded defaults
#   make test   lint + the whole test suite (installs what it needs first)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
TOOLS_DIR ?= $(HOME)/.cache/radpipe/tools
export RADPIPE_TOOLS_DIR := $(TOOLS_DIR)

.PHONY: venv system-deps tools lint format test test-fast demo bench audit clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	scripts/install-system-deps.sh

tools:
	scripts/install-tools.sh

lint: venv
	$(VENV)/bin/ruff check operator tests models
	$(VENV)/bin/ruff format --check operator tests models
	$(VENV)/bin/mypy operator/radpipe

format: venv
	$(VENV)/bin/ruff format operator tests models
	$(VENV)/bin/ruff check --fix operator tests models

test: venv system-deps tools lint
	$(PY) -m pytest

# Unit tests only: seconds, no servers.
test-fast: venv
	$(PY) -m pytest tests/unit -q

demo: venv system-deps
	$(PY) -m radpipe.demo

bench: venv system-deps tools
	for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Known-vulnerability scan (pip-audit); needs pypi.org's per-version JSON API.
audit: venv
	scripts/audit-dependencies.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
