# tickwire: `make demo` runs the demo, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WIRELOAD_SRC := ../shared/bench/wireload

.PHONY: demo test lint typecheck unit bench wireload clean serve

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tickwire and its development tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
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

test: lint typecheck unit

wireload:
	@test -d $(WIRELOAD_SRC) || { echo "wireload sources not found at $(WIRELOAD_SRC)"; exit 1; }
	@mkdir -p build/wireload
	@cp $(WIRELOAD_SRC)/*.c $(WIRELOAD_SRC)/*.h $(WIRELOAD_SRC)/Makefile build/wireload/
	@$(MAKE) -s -C build/wireload wireload

bench: $(STAMP) wireload
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache
