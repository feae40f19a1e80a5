# Two entry points a newcomer needs: `make demo` and `make test`.
# Each creates .venv when it is missing and installs what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.demo-home
SERVE_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: demo test bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/softcopy demo --home $(DEMO_HOME) --days 120
	$(BIN)/softcopy ingestion run --home $(DEMO_HOME) --mode catch_up_recent --lookback-days 120
	$(BIN)/softcopy memory search --home $(DEMO_HOME) "standup notes" --k 5
	@echo
	@echo "Try next (in another terminal):  export SOFTCOPY_HOME=$(DEMO_HOME)"
	@echo "  $(BIN)/softcopy ingestion coverage"
	@echo "  $(BIN)/softcopy ingestion jobs"
	@echo "Now serving the dashboard; Ctrl-C stops it."
	$(BIN)/softcopy serve --home $(DEMO_HOME) $(SERVE_FLAGS)

# Browser tests drive Debian's Chromium; install it when we can (root with apt), else
# the browser tests skip with a message saying so.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "could not install chromium: browser tests will be skipped"; \
	else echo "no /usr/bin/chromium and not root: browser tests will be skipped"; fi

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layers of docs/architecture.md ([tool.importlinter] in pyproject.toml)
	$(BIN)/python -m pytest -n 3 -m "not serial"  # 3 workers: most test time is waiting
	$(BIN)/python -m pytest -m serial  # tests that stop a server the others share

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/control_plane.py
	$(BIN)/python bench/search_quality.py

clean:
	rm -rf $(VENV) $(DEMO_HOME)
