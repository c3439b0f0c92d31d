# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine
# with only Python 3.11 and make: each creates the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# The warehouse, landing folder and Dagster home of the demo (README, Settings).
export CDP_LANDING_DIR ?= $(CURDIR)/data/landing
export CDP_WAREHOUSE ?= $(CURDIR)/data/warehouse/cdp.duckdb
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
DEMO_PEOPLE ?= 2000
DEMO_SEED ?= 42
# The sample delivery is dated 2025-12-01; segments of the demo are evaluated on that day.
export CDP_AS_OF_DATE ?= 2025-12-01
# Write key of the local event endpoint; set your own in .env for anything but a laptop.
export CDP_WRITE_KEYS ?= wk-dev-local

.PHONY: install demo test dev lint bench clean chromium

# uv installs the committed lock in seconds; pip's resolver backtracks for minutes here.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on this machine) every
# process would otherwise compile ~5 500 modules again, about 12 s per test worker.
$(BIN)/cdp: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(BIN)/cdp

install: $(BIN)/cdp

demo: install
	$(BIN)/cdp sample-data --out $(CDP_LANDING_DIR) --people $(DEMO_PEOPLE) --seed $(DEMO_SEED)
	$(BIN)/cdp run

# Chromium for the browser tests (tests/test_ui_browser.py skips without it): Debian's
# package, installed when missing and root; Playwright cannot download its own browsers here.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium; fi

# The tests set every setting they need themselves; the demo's exports above are cleared so
# that a test never falls back on the demo's folders or its pinned date.
test: install chromium
	env -u CDP_LANDING_DIR -u CDP_WAREHOUSE -u DAGSTER_HOME -u CDP_AS_OF_DATE -u CDP_WRITE_KEYS \
		$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The Dagster UI and daemon in the foreground; the event endpoint (:8088), the profile API
# (:8000) and the marketer UI (:8080) beside them, stopped with it.
dev: install
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/cdp collect --port 8088 & collect=$$!; \
	$(BIN)/cdp api --port 8000 --workers 2 & api=$$!; \
	$(BIN)/cdp ui --port 8080 & ui=$$!; \
	trap "kill $$collect $$api $$ui" EXIT; \
	$(BIN)/dagster dev -w workspace.yaml -p 3000

lint: install
	$(BIN)/ruff check cdp_pipeline tests bench
	$(BIN)/sqlfluff lint dbt_project/models
	$(BIN)/python -m cdp_pipeline.segments check

bench: install
	$(BIN)/python bench/run_nightly.py

clean:
	rm -rf $(VENV) data/landing data/warehouse data/dagster_home data/exports
