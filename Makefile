# Two commands on a fresh machine (Python 3.11, nothing installed):
#   make demo   set up .venv, fine-tune the shipped base on the bundled corpus (~2.5 min on
#               2 cores), print lyrics
#   make test   set up .venv, then lint (ruff) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_CKPT ?= checkpoints

.PHONY: demo test setup bench clean

setup: $(STAMP)

# torch is pinned by constraints.txt (2.13.0, the local CPU build); pyproject keeps a range.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "demo: fine-tuning the shipped Chinese base (zh) on the bundled corpus for 150 s" >&2
	$(BIN)/charlm train --init-from zh --max-time 150 --run demo-$$(date +%Y%m%d-%H%M%S) --checkpoint-dir $(DEMO_CKPT)
	$(BIN)/charlm generate --prefix 分开 --seed 1 --lines 8 --length 300 --checkpoint-dir $(DEMO_CKPT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
