# Two commands do all the set-up on a fresh machine:
#   make demo   -- create .venv if missing, install mim4dd, run the main job on the embedded digits
#   make test   -- the same with the dev dependencies, then every test (CI runs exactly this)
# A GPU user overrides the torch pins, e.g. `make demo TORCH_PINS="torch torchvision"`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS ?= torch==2.13.0 torchvision==0.28.0
OUT ?= runs/demo
FLAGS ?=

.PHONY: demo test export clean readme nbs bench help
help:
	@echo "make demo | make test | make export | make clean | make readme | make nbs | make bench"

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) setup.py settings.ini
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/mim4dd_demo --out $(OUT)

# pytest exits 5 when it collects nothing, which fails this target as any non-zero code does.
# FLAGS="slow data" also runs the flagged notebook cells.
test: $(VENV)/.installed-dev
	MIM4DD_TEST_FLAGS="$(FLAGS)" $(PY) -m pytest tests

export: $(VENV)/.installed-dev
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean

readme: $(VENV)/.installed-dev
	$(PY) tools/make_readme.py

# re-execute notebooks from a fresh kernel so their outputs (the documentation) match the code
nbs: $(VENV)/.installed-dev
	$(PY) tools/run_nbs.py $(NB)
	$(VENV)/bin/nbdev_clean

bench: $(VENV)/.installed
	$(PY) bench/run_all.py
