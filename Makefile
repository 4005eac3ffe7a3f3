# Two commands do all the set-up: `make train` and `make test` each create
# .venv when it is missing and install cnnlab with the pinned versions of
# requirements.lock, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test bench lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

# The default experiment: LeNet-5 on the embedded digits. Extra Hydra overrides: make train ARGS="trainer.epochs=5".
train: $(STAMP)
	$(BIN)/cnnlab-train $(ARGS)

# Two pytest-xdist workers: XLA compiles on one thread, so two tests at a time
# keep both cores busy (one process took about 1.5x as long on 2 cores).
TEST_WORKERS ?= 2

# The tests also run the sweep launchers and the Optuna sweeper: their extras go in once.
SWEEPS_STAMP := $(VENV)/.sweeps-installed

$(SWEEPS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,ray,slurm,optuna]'
	$(BIN)/python -m pip install --quiet --no-deps -c requirements.lock hydra-ray-launcher
	touch $@

test: $(SWEEPS_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The benchmark suite (bench/): installs the `bench` extra (PyTorch's CPU build)
# once, runs every benchmark and writes docs/performance.md. Options: make bench ARGS="--with-tta".
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(ARGS)

# Re-resolve the pinned set after changing the dependencies in pyproject.toml.
lock:
	rm -rf /tmp/cnnlab-lock && $(PYTHON) -m venv /tmp/cnnlab-lock
	/tmp/cnnlab-lock/bin/python -m pip install --quiet '.[test,ray,slurm,optuna]'
	/tmp/cnnlab-lock/bin/python -m pip install --quiet --no-deps hydra-ray-launcher==1.2.2
	/tmp/cnnlab-lock/bin/python -m pip freeze --exclude-editable | grep -v '^cnnlab' > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info
