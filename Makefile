# The README's two commands: `make demo` and `make test`. Both install first (idempotent). `make lint`: ruff.
# `make demo-seeds`: the demo's 5 folds, benchmark seeds 0-4 (into DEMO_OUT, DEMO_OUT_s1 .. DEMO_OUT_s4), then their
# summary: each row's mean ± std and each verdict with its one-sided 95% bound over the folds. `make demo-table3`: the
# paper's Table 3 (self-distillation's terms one by one, on L alone) into DEMO_OUT_table3; `make demo-table3-seeds`:
# its 5 folds (DEMO_OUT_table3, DEMO_OUT_table3_s1 .. _s4) and their summary, each step with its bound.
# PYTHON: the interpreter VENV is made from (when it imports torch and detectron2, VENV sees its environment);
# VENV: where to install; D2_SOURCE (environment): build detectron2 from this source (see tools/install.sh).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pudet-installed
DEMO_OUT ?= output/demo
DEMO_ARGS ?=

.PHONY: install demo demo-seeds demo-table3 demo-table3-seeds test lint clean

install: $(STAMP)

# re-run only when what the install depends on changes: a second `make install` is a no-op
$(STAMP): tools/install.sh setup.py constraints.txt
	PYTHON=$(PYTHON) tools/install.sh $(VENV)
	touch $(STAMP)

demo: install
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT) $(DEMO_ARGS)

# the seed comes after DEMO_ARGS: a --seed there must not make five runs of one seed
demo-seeds: install
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT) $(DEMO_ARGS) --seed 0
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT)_s1 $(DEMO_ARGS) --seed 1
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT)_s2 $(DEMO_ARGS) --seed 2
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT)_s3 $(DEMO_ARGS) --seed 3
	$(PY) projects/WildDigits/run_demo.py --output-dir $(DEMO_OUT)_s4 $(DEMO_ARGS) --seed 4
	$(PY) projects/WildDigits/summarize_runs.py $(DEMO_OUT) $(DEMO_OUT)_s1 $(DEMO_OUT)_s2 $(DEMO_OUT)_s3 $(DEMO_OUT)_s4 \
		--output $(DEMO_OUT)_seeds.md

demo-table3: install
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3 $(DEMO_ARGS)

demo-table3-seeds: install
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3 $(DEMO_ARGS) --seed 0
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3_s1 $(DEMO_ARGS) --seed 1
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3_s2 $(DEMO_ARGS) --seed 2
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3_s3 $(DEMO_ARGS) --seed 3
	$(PY) projects/WildDigits/run_demo.py --table 3 --output-dir $(DEMO_OUT)_table3_s4 $(DEMO_ARGS) --seed 4
	$(PY) projects/WildDigits/summarize_runs.py $(DEMO_OUT)_table3 $(DEMO_OUT)_table3_s1 $(DEMO_OUT)_table3_s2 \
		$(DEMO_OUT)_table3_s3 $(DEMO_OUT)_table3_s4 --output $(DEMO_OUT)_table3_seeds.md

test: install
	$(PY) -m pytest -q tests

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) output
