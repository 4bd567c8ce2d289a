# Quick start: `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# The stamp records that the pinned stack and the package are installed; it
# is rebuilt only when a requirements file or setup.py changes.
STAMP := $(VENV)/.mmtfclip-installed
REQS := requirements.txt $(wildcard requirements/*.txt) setup.py
PYTEST_ARGS ?=

.PHONY: demo test install clean-venv

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VPY) $(REQS)
	$(VPY) -m pip install --upgrade --quiet pip
	$(VPY) -m pip install --quiet -r requirements.txt
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest tests -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(VPY) tools/misc/demo.py

clean-venv:
	rm -rf $(VENV)
