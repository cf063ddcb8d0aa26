# Set-up and the two user-facing commands: `make demo` and `make test`.
# The venv lives in .venv/; .venv/.installed is the stamp that makes a second run skip the install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=25"
	$(BIN)/pip install -q -r requirements.lock
	# finn-plus pins brevitas==0.13.0; its real requirements are in requirements.lock.
	# finn-plus-driver (FINN's PYNQ driver, run on the emulated board) pins numpy<2; it runs on numpy 2 here.
	$(BIN)/pip install -q --no-deps finn-plus==1.6.1 hls4ml==1.3.0 finn-plus-driver==1.6.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# No target here calls a system package manager (tests/core/test_makefile.py): `make test` runs as any user and
# changes nothing outside this folder. The browser check of report.html uses a Chromium on PATH (or the one
# HAPFPGA_CHROMIUM names) and is skipped, with its reason, without one; CI installs Chromium in .ci/run.
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hapfpga run examples/demo.yaml --out runs/demo

# the default suite on TEST_WORKERS pytest-xdist workers (CI has 2 cores), each test file on one worker so a
# file's module-scoped fixtures run once; `make test TEST_WORKERS=0` runs it in one process
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check hapfpga tests benchmarks

# every benchmark; pruning_vs_finn with README's --quick settings, folding_vs_finn on every board too, prune_example
# (examples/prune_cnv_digits.yaml through hapfpga run) on its 3 seeds one after another
# (run_yosys_jobs.py is a helper and conformance_table.py prints a test run's table: neither is a benchmark)
bench: $(STAMP)
	for b in $(filter-out benchmarks/pruning_vs_finn.py benchmarks/prune_example.py benchmarks/run_yosys_jobs.py benchmarks/conformance_table.py benchmarks/scratch.py,$(wildcard benchmarks/*.py)); do \
		$(BIN)/python $$b || exit 1; done
	$(BIN)/python benchmarks/folding_vs_finn.py --all-boards --models cnv
	$(BIN)/python benchmarks/pruning_vs_finn.py --quick
	$(BIN)/python benchmarks/pruning_vs_finn.py --quick --model resnet8 --bits 4 --lr 0.01
	$(BIN)/python benchmarks/prune_example.py --seeds 0 1 2

clean:
	rm -rf runs build .pytest_cache
