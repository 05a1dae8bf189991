# The two set-up commands of the README: `make demo` and `make test`.
# Each does the whole set-up on a fresh Debian machine with Python 3.11.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

DEMO_DIR ?= demo-workspace
PYTEST_ARGS ?=

.PHONY: demo test venv system-deps lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: venv
	@mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && ../$(BIN)/flowscope demo --serve

system-deps:
	@scripts/system-deps.sh

test: venv system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

bench: venv
	$(BIN)/python bench/logging.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/tuning.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/workbench.py
	$(BIN)/python bench/server.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) test-output .pytest_cache
