# The two commands a new user runs: `make demo` and `make test`.
# Both set up .venv themselves on a fresh machine; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: setup demo test lint bench clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the HTML-report test; best effort (the test skips with a reason without it).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
	    && echo "installed chromium" ) || echo "chromium not installed: the browser test will skip"

demo: setup
	$(VENV)/bin/cytophen demo --out $(DEMO_DIR)

test: setup browser
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache build *.egg-info src/*.egg-info
