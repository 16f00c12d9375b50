# make test: set up .venv and run the tests.  make reproduce: the main experiment on a CPU.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint reproduce clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .

reproduce: setup
	$(PY) data/shakespeare_char/prepare.py
	for act in gelu relu none; do \
		$(PY) train.py config/train_shakespeare_char_cpu.py --activation=$$act --out_dir=out-reproduce-$$act || exit 1; \
	done
	$(PY) -c "import json; [print(f\"{a:5s} best val loss {json.load(open(f'out-reproduce-{a}/summary.json'))['best_val_loss']:.4f}\") for a in ('gelu', 'relu', 'none')]"
	for act in gelu relu none; do \
		echo "=== sample, $$act ==="; \
		$(PY) sample.py --out_dir=out-reproduce-$$act --num_samples=1 --max_new_tokens=300 || exit 1; \
	done

clean:
	rm -rf out-reproduce-* .pytest_cache
