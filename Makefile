# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both create the local virtual environment .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
NO_DEPS := $(shell python3 -c "import ast,sys;t=open('setup.py').read();print(' '.join(ast.literal_eval(t.split('NO_DEPS = ')[1].split(']')[0]+']')))")
TASK ?= ave
WORKDIR ?= runs/$(if $(filter ave,$(TASK)),demo,demo_$(TASK))
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(NO_DEPS)
	touch $@

demo: setup
	$(PY) -m dgsct_jax.main --config=configs/demo.py:task=$(TASK) --workdir=$(WORKDIR)

# --dist loadfile: each file on one worker, so a module's fixtures are built once;
# --no-loadscope-reorder: files in the order of tests/conftest.py (longest first), not by
# number of tests.
test: setup
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS) tests

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
