# Opportunity Explorer: `make run` starts the app on the demo database, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
DB     ?= $(shell $(PYTHON) -c "import os,tomllib;print(os.environ.get('OPPORTUNITY_DB') or tomllib.load(open('config.toml','rb'))['database']['path'])")
SCALE  ?= $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('config.toml','rb'))['demo']['scale'])")

.PHONY: run test venv demo bench chromium axe clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

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

test: venv chromium axe
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: venv chromium
	$(BIN)/python -m opportunity_engine.bench
	$(BIN)/python tools/bench_app.py

clean:
	rm -rf $(VENV) .pytest_cache
