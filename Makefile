# The two commands of the README (`make demo`, `make test`) install what they need first.
PYTHON := .venv/bin/python

.PHONY: install demo test test-fast bench

install:
	bash tools/install_env.sh

demo: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) tools/demo.py --work-dir work_dirs/demo

test: install
	$(PYTHON) -m pytest -q tests

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow" tests

bench: install
	$(PYTHON) tools/analysis/benchmark_backbone.py
