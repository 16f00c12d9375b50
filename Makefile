# make test: set up .venv and run the tests.
# make reproduce: the CPU claim sweep (gelu/relu/none x 5 seeds, ~15 min on 2 cores) in reproduced/, its verdict,
# each run's loss beside the committed one in results/, and samples.
# make gpu-check: on a CUDA machine, every GPU path checked in a few minutes (tools/gpu_check.py).
# make gpu-speed: on a CUDA machine, the speed goals measured beside nanoGPT's (tools/gpu_check.py --speed=True).
# make gpu-paths: on a CUDA machine, the code paths only a GPU takes (tools/gpu_check.py --paths=True).
# make gpu-all: on a CUDA machine, all three in one call (checks and paths together, then the speed rows alone),
# installing the GPU extras from gpu-wheels/ first; make gpu-wheels fills gpu-wheels/ where a package index is reached.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-torch2.11 lint reproduce gpu-check gpu-speed gpu-paths gpu-all gpu-wheels clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# One pytest worker per CPU (pytest-xdist), each test module on one worker, so that a module's fixtures
# (its trained runs) are made once.
PYTEST_ARGS := -q -n auto --dist loadscope tests

# GPT-2's BPE ranks are cached in .cache/tiktoken (downloaded once; offline, put them there: see README)
test: setup
	TIKTOKEN_CACHE_DIR=$${TIKTOKEN_CACHE_DIR:-$(CURDIR)/.cache/tiktoken} $(PY) -m pytest $(PYTEST_ARGS)

# The suite on torch 2.11, the oldest torch supported (what it lacks, such as the fused loss, is skipped,
# each skip with its reason). Not part of `make test` or CI: PyPI's 2.11 wheel is a CUDA build of several GB.
VENV_OLD := .venv-torch2.11
$(VENV_OLD)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV_OLD)
	$(VENV_OLD)/bin/pip install -q torch==2.11.0 $$(grep -v '^torch' requirements.txt) pytest pytest-xdist transformers
	touch $@

test-torch2.11: $(VENV_OLD)/.installed
	TIKTOKEN_CACHE_DIR=$${TIKTOKEN_CACHE_DIR:-$(CURDIR)/.cache/tiktoken} $(VENV_OLD)/bin/python -m pytest -rs $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

reproduce: setup
	$(PY) data/shakespeare_char/prepare.py
	$(PY) sweep.py config/sweep_claim_cpu.py --out_dir=reproduced --compare_with=results
	sed -n '/^| activation/,/^$$/p' reproduced/claim_cpu/report.md
	for act in gelu relu none; do \
		echo "=== a sample from $$act (seed 1) ==="; \
		$(PY) sample.py --out_dir=reproduced/claim_cpu/runs/$$act-s1 --num_samples=1 --max_new_tokens=300 || exit 1; \
	done

# The GPU targets run with the Python (and its CUDA torch) already installed: they install nothing.
gpu-check:
	$(PYTHON) -m tools.gpu_check

gpu-speed:
	$(PYTHON) -m tools.gpu_check --speed=True --out_dir=out-gpu-speed

gpu-paths:
	$(PYTHON) -m tools.gpu_check --paths=True --out_dir=out-gpu-paths

gpu-all:
	$(PYTHON) -m tools.gpu_check --all=True --out_dir=out-gpu-all

gpu-wheels:
	$(PYTHON) -m pip download --no-deps -d gpu-wheels -r requirements-gpu.txt

clean:
	rm -rf .pytest_cache
