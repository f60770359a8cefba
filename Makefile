# ldrld-mini: every target creates .venv with pip on first use.
#   make demo   the main job on the built-in offline data (CPU, a few minutes)
#   make test   unit/integration tests + strict nbval on the notebooks
#   make lab    JupyterLab on notebooks/
#   make bench  the loss benchmark (add BENCH=benchmarks/bench_train_step.py for the training step)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The versions CI uses; override for another platform, e.g. make test TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
BENCH ?= benchmarks/bench_losses.py

.PHONY: demo test lab bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[notebooks,test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ldrld-mini demo

test: $(STAMP)
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python $(BENCH)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
