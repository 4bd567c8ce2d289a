# Quick start: `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# The stamp records that the pinned stack and the package are installed; it
# is rebuilt only when a requirements file or setup.py changes.
STAMP := $(VENV)/.mmtfclip-installed
REQS := requirements.txt $(wildcard requirements/*.txt) setup.py
PYTEST_ARGS ?=

.PHONY: demo test lint format install clean-venv

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VPY) $(REQS)
	$(VPY) -m pip install --upgrade --quiet pip
	$(VPY) -m pip install --quiet -r requirements.txt
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The same checks as .pre-commit-config.yaml, from pinned pip packages, so
# that they run offline and in CI.
LINT_STAMP := $(VENV)/.mmtfclip-lint-installed
LINT_PATHS := mmtfclip configs tools tests setup.py

$(LINT_STAMP): $(VPY) requirements/lint.txt
	$(VPY) -m pip install --quiet -r requirements/lint.txt
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(VPY) -m flake8 $(LINT_PATHS)
	$(VPY) -m isort --check-only --diff $(LINT_PATHS)
	$(VPY) -m yapf --diff --recursive $(LINT_PATHS)
	$(VENV)/bin/codespell --skip='*.jpg,*.png' $(LINT_PATHS) docs README.md

format: $(LINT_STAMP)
	$(VPY) -m isort $(LINT_PATHS)
	$(VPY) -m yapf --in-place --recursive $(LINT_PATHS)

test: $(STAMP)
	$(VPY) -m pytest tests -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(VPY) tools/misc/demo.py

clean-venv:
	rm -rf $(VENV)
