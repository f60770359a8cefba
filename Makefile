# ldrld-mini: every target creates .venv with pip on first use.
#   make demo   the main job on the built-in offline data (CPU, a few minutes)
#   make test   unit/integration tests + strict nbval on the notebooks, then the notebooks on a second rounding path
#   make lab    JupyterLab on notebooks/
#   make bench  the loss benchmark (add BENCH=benchmarks/bench_train_step.py for the training step)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The versions CI uses; override for another platform, e.g. make test TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
BENCH ?= benchmarks/bench_losses.py

.PHONY: demo test test-rounding lab bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[notebooks,test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ldrld-mini demo

# The notebooks run twice: as committed, then on another float-rounding path (2 torch threads where a
# notebook asks for 1, 1 where it asks for 2: ldrld_mini/rounding.py). Nothing nbval compares may depend on
# the rounding. `make test ROUNDING="LDRLD_ONEDNN=0"` checks oneDNN off (about 10x slower where models train).
ROUNDING ?= LDRLD_THREADS=other

test: $(STAMP)
	$(BIN)/python -m pytest
	$(ROUNDING) $(BIN)/python -m pytest notebooks tests/test_notebook_markers.py

test-rounding: $(STAMP)
	$(ROUNDING) $(BIN)/python -m pytest notebooks tests/test_notebook_markers.py

# JupyterLab refuses to start as root (containers, Colab-like VMs) unless told; say so and pass --allow-root.
lab: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then \
		echo "make lab: running as root, so JupyterLab is started with --allow-root"; \
		$(BIN)/jupyter lab --allow-root notebooks/; \
	else \
		$(BIN)/jupyter lab notebooks/; \
	fi

bench: $(STAMP)
	$(BIN)/python $(BENCH)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
