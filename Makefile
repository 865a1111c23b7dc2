# Opportunity Explorer: `make run` starts the app on the demo database, `make test` runs every test,
# `make test-fast` the quick loop (no browser, nothing slow), `make lint` ruff, mypy and the import contracts.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
DB     ?= $(shell $(PYTHON) -c "import os,tomllib;print(os.environ.get('OPPORTUNITY_DB') or tomllib.load(open('config.toml','rb'))['database']['path'])")
SCALE  ?= $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('config.toml','rb'))['demo']['scale'])")

.PHONY: run test test-fast lint lock venv demo bench chromium axe clean

# Installs exact versions of everything, direct and indirect, from the lock; re-runs when the lock changes.
$(BIN)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

venv: $(BIN)/.installed

# After editing requirements.txt or requirements-dev.txt: re-resolve the lock (pins kept where they still fit;
# `make lock UPGRADE=--upgrade` moves everything to the newest versions allowed), then `make test`.
lock: venv
	$(BIN)/uv pip compile requirements-dev.txt -o requirements.lock --python-version 3.11 \
	  --custom-compile-command "make lock" --quiet $(UPGRADE)

$(DB): | $(BIN)/.installed
	$(BIN)/python -m opportunity_engine demo --db $(DB) --scale $(SCALE)

demo: $(DB)

run: venv demo
	@echo ""
	@echo "Opportunity Explorer on http://localhost:$(PORT)  (database $(DB))"
	@echo "Sign in as admin, finance, viewer or csu, password 'demo' (see README.md)."
	@echo ""
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true

# Debian's Chromium for the end-to-end browser test (never `playwright install`: it downloads a browser),
# and LibreOffice, which opens and recalculates both workbooks in a test (a file that needs repair fails).
chromium:
	@{ command -v chromium && command -v soffice; } >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium and LibreOffice Calc for the browser and workbook tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-liberation libreoffice-calc-nogui >/dev/null; }

# axe-core for the accessibility test, from the npm registry at the version package-lock.json pins.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

axe: node_modules/.installed

# Two workers; the browser tests stay together on one of them (one streamlit server for the module).
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup

test: venv chromium axe
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not browser and not slow"

# Settings in pyproject.toml: ruff (style, bugs), mypy (types), lint-imports (wings, no streamlit in the engine).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: venv chromium
	$(BIN)/python -m opportunity_engine.bench
	$(BIN)/python tools/bench_app.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
