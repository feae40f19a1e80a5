# Two entry points a newcomer needs: `make demo` and `make test`.
# Each creates .venv when it is missing and installs what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.demo-home

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/softcopy demo --home $(DEMO_HOME) --days 120
	$(BIN)/softcopy ingest --home $(DEMO_HOME)
	$(BIN)/softcopy memory search --home $(DEMO_HOME) "standup notes"
	@echo
	@echo "Try next:  export SOFTCOPY_HOME=$(DEMO_HOME)"
	@echo "           $(BIN)/softcopy memory search 'release plan'"
	@echo "           $(BIN)/softcopy ledger list --source notes"

test: $(STAMP)
	$(BIN)/ruff check softcopy tests bench
	$(BIN)/ruff format --check softcopy tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) $(DEMO_HOME)
