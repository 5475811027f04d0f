# One-command workflows. Every target creates .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-fast run bench bench-gpu clean

$(BIN)/pix2pix: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/pix2pix .dvc/plots.html

# DVC's plots page with vega inlined (see workflow/plots_template.py): `dvc plots show` works offline.
.dvc/plots.html: $(BIN)/pix2pix workflow/plots_template.py
	$(BIN)/python -m workflow.plots_template

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

bench: install
	$(BIN)/python benchmarks/run.py

# On a CUDA machine, under 8 minutes: the JSON goes to $$OUT (else benchmarks/), the table to stdout.
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
