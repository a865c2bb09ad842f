# tickwire: `make demo` runs the demo, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WIRELOAD_SRC := ../shared/bench/wireload

JS     := js
JS_STAMP := $(JS)/node_modules/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint typecheck unit bench wireload clean serve js js-build js-test chromium browser fuzz churn bench-protocol

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tickwire and its development tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@echo "starting the tickwire demo: open http://127.0.0.1:$${TICKWIRE_PORT:-8080}/ (Ctrl-C stops it)"
	@TICKWIRE_DEMO=1 $(BIN)/tickwire serve

serve: $(STAMP)
	$(BIN)/tickwire serve

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/tickwire

unit: $(STAMP)
	$(BIN)/pytest -q -m "not bench"

# The fuzz and model-based tests with 50 times the examples of `make test` (FUZZ_SCALE=N changes it).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q --timeout=1800 tests/fuzz tests/node/test_delivery_model.py

# -- the browser SDK (js/): built files are committed in src/tickwire/static/ -----------------------

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	@echo "installing the browser SDK's development tools (npm ci) ..."
	@cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(JS_STAMP)

# Rebuild src/tickwire/static/ from js/src (then commit it).
js-build: $(JS_STAMP)
	@cd $(JS) && node scripts/build.mjs

# The committed build must equal a fresh one; then the SDK's unit tests and types.
js-test: $(JS_STAMP)
	@cd $(JS) && node scripts/build.mjs --check
	@cd $(JS) && node --test test/unit/
	@cd $(JS) && npx tsc -p test/types/tsconfig.json && echo "tickwire: types check"
	@cd $(JS) && node scripts/vendor-react.mjs

js: js-test

# Debian's chromium for tests/browser (Playwright never downloads a browser here).
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests (apt-get) ..."; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "ERROR: could not install chromium (apt-get install -y chromium): the browser tests cannot run"; exit 1; }; }
	@$(CHROMIUM) --version

browser: $(STAMP) js chromium
	$(BIN)/pytest -q tests/browser

test: lint typecheck js chromium unit

wireload:
	@test -d $(WIRELOAD_SRC) || { echo "wireload sources not found at $(WIRELOAD_SRC)"; exit 1; }
	@mkdir -p build/wireload
	@cp $(WIRELOAD_SRC)/*.c $(WIRELOAD_SRC)/*.h $(WIRELOAD_SRC)/Makefile build/wireload/
	@$(MAKE) -s -C build/wireload wireload

bench: $(STAMP) wireload
	$(BIN)/python bench/run.py

# The churn soak (BENCHMARKS.md): 60 s, 2,000 clients, 10,000 users; CHURN_ARGS="--duration 10 ..." to change.
churn: $(STAMP)
	$(BIN)/python bench/churn.py $(CHURN_ARGS)

# WebSocket ping round trips, and MessagePack vs JSON frames (bench/README.md).
bench-protocol: $(STAMP)
	$(BIN)/python bench/ping_latency.py
	$(BIN)/python bench/binary_frames.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache $(JS)/node_modules $(JS)/dist $(JS)/build
