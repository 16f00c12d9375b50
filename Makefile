# make test: set up .venv and run the tests.
# make reproduce: the CPU claim sweep (gelu/relu/none x 5 seeds, ~15 min on 2 cores) in reproduced/, its verdict,
# each run's loss beside the committed one in results/, and samples.
# make gpu-check: on a CUDA machine, every GPU path checked in a few minutes (gpu_check.py).
# make gpu-speed: on a CUDA machine, the speed goals measured beside nanoGPT's (gpu_check.py --speed=True).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint reproduce gpu-check gpu-speed clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# GPT-2's BPE ranks are cached in .cache/tiktoken (downloaded once; offline, put them there: see README)
test: setup
	TIKTOKEN_CACHE_DIR=$${TIKTOKEN_CACHE_DIR:-$(CURDIR)/.cache/tiktoken} $(PY) -m pytest -q tests

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

gpu-check: setup
	$(PY) gpu_check.py

gpu-speed: setup
	$(PY) gpu_check.py --speed=True --out_dir=out-gpu-speed

clean:
	rm -rf .pytest_cache
