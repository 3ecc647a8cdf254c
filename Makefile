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

# The whole stack, supervised, on real endpoints in the capped local profile. Ctrl-C stops it.
# `make up UP_ARGS="--offline --profile local"` runs it with no network; `--profile full` follows every perp.
UP_ARGS ?= --profile local
up: $(STAMP)
	$(BIN)/market up $(UP_ARGS)

# The admin page is tested in Debian's Chromium, driven by Playwright (which never downloads a browser);
# the systemd units of deploy/ by systemd-analyze (Debian's systemd package); the PostgreSQL memory
# against a throw-away cluster of Debian's postgresql (tests/postgres_server.py), or $$MARKET_TEST_POSTGRES_URL.
# Three pytest-xdist workers on two cores, work-stealing: the stack and real-speed tests spend most
# of their time waiting (Dagster's daemon ticks, the replay's clock), so a third worker fills it.
test: $(STAMP)
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	@command -v systemd-analyze >/dev/null || (apt-get update && apt-get install -y systemd)
	@test -n "$$MARKET_TEST_POSTGRES_URL" || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql)
	$(BIN)/python -m pytest -n 3 --dist worksteal

# Every benchmark, then one table: each figure, its goal, its same-run baseline, pass or fall short.
bench: $(STAMP)
	$(BIN)/python bench/all.py

clean:
	rm -rf $(VENV) build *.egg-info
