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
	@echo "make demo | make test | make export | make readme | make nbs [NB=...] | make bench [ONLY=...] | make clean [RUNS=1]"

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

# Re-execute notebooks from a fresh kernel so their outputs (the documentation) match the code: every cell that runs
# has its old outputs cleared first (flagged cells keep theirs unless FLAGS names the flag). NB="nbs/13_mtt.ipynb ..."
# runs some; the default is every chapter (nbs/*.ipynb; the nbs/experiments/ notebooks only when named in NB).
nbs: $(VENV)/.installed-dev
	$(PY) tools/run_nbs.py $(NB) --flags "$(FLAGS)"
	$(if $(NB),for f in $(NB); do $(VENV)/bin/nbdev_clean --fname $$f; done,$(VENV)/bin/nbdev_clean)

# The benchmark scripts one at a time with their CPU-sized defaults (hours in all): ONLY="mtt_speed eval_ensemble"
# runs some. They append to bench/results/*.jsonl; `$(PY) bench/run_all.py --list` prints the commands.
ONLY ?=
bench: $(VENV)/.installed
	$(PY) bench/run_all.py $(if $(ONLY),--only $(ONLY))

# Safe by default: removes only what a build or a test run regenerates (build/, dist/, _proc/, _docs/, caches).
# Never .venv (nor the egg-info beside it), data or bench/results; runs/ (experts and distilled sets, hours of CPU)
# only with `make clean RUNS=1`.
RUNS ?=
clean:
	rm -rf build dist _proc _docs .pytest_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print0 | xargs -0 rm -rf
	$(if $(RUNS),rm -rf runs)
