# Two entry points for a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LINT_PATHS := src tests benchmarks scripts

.PHONY: install demo test lint browser bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[test]'
	# invisible-watermark (used only by tests to embed marks) insists on the GUI opencv-python; we use the headless one.
	$(BIN)/pip install --quiet --no-deps invisible-watermark==0.2.0
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/pixelsleuth scan --no-store samples/

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# Debian's chromium for the browser tests of the HTML reports (they skip without it); never `playwright install`.
CHROMIUM := /usr/lib/chromium/chromium
browser:
	@[ -x $(CHROMIUM) ] || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	  || echo "chromium not installable here: the browser tests of the HTML reports will skip"; }

test: lint browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/intake_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
