# The README's two commands: `make up` (set up and run the stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/market api

# The admin page is tested in Debian's Chromium, driven by Playwright (which never downloads a browser).
test: $(STAMP)
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/health.py

clean:
	rm -rf $(VENV) build *.egg-info
