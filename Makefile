# Two commands on a fresh machine (Python 3.11, nothing installed):
#   make demo   set up .venv, fine-tune the shipped base on the bundled corpus (~2.5 min on
#               2 cores), print lyrics
#   make test   set up .venv, then lint (ruff) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_CKPT ?= checkpoints

.PHONY: demo test setup bench clean browser

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

# The page's browser test drives Debian's Chromium (Playwright's own download cannot work
# offline). As root (CI) it is installed when missing; otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing chromium for the page's browser test" >&2; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; \
	  else echo "make: no chromium: the page's browser test will be skipped" >&2; fi; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
