# The README's two commands: `make demo` and `make test`. Both install first (idempotent). `make lint`: ruff.
# PYTHON: the interpreter VENV is made from (when it imports torch and detectron2, VENV sees its environment);
# VENV: where to install; D2_SOURCE (environment): build detectron2 from this source (see tools/install.sh).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pudet-installed
DEMO_OUT ?= output/demo
DEMO_ARGS ?=

.PHONY: install demo test lint clean

install: $(STAMP)

# re-run only when what the install depends on changes: a second `make install` is a no-op
$(STAMP): tools/install.sh setup.py constraints.txt
	PYTHON=$(PYTHON) tools/install.sh $(VENV)
	touch $(STAMP)

demo: install
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT) $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q tests

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) output
