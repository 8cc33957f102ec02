# IFNS Paper — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# make test: pytest-xdist workers (the tests that start real processes run one at a time on one)
TEST_WORKERS ?= 2
PROPERTY_TESTS := tests/engine/test_broker_properties.py tests/engine/test_features.py \
	tests/feeds/test_synthetic.py tests/marketdata/test_importers.py tests/metrics/test_compare.py \
	tests/metrics/test_metrics.py

.PHONY: run test fuzz lint check-config bench clean

run: $(STAMP)  ## set up everything and start web, worker, beat (and Redis if needed)
	$(PY) -m ifns_paper.devserver

test: $(STAMP)  ## set up the same environment and run the whole suite (TEST_WORKERS=1: one process)
	$(PY) -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup,) $(PYTEST_ARGS)

fuzz: $(STAMP)  ## the property tests (hypothesis) with 20x their examples, fresh ones each run
	IFNS_FUZZ_FACTOR=20 $(PY) -m pytest -q -n $(TEST_WORKERS) $(PROPERTY_TESTS)

lint: $(STAMP)  ## ruff, and the architecture contracts of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

check-config: $(STAMP)
	$(PY) manage.py paper_config check

# Peers (NautilusTrader, backtrader) get their own virtualenv: the last NautilusTrader for
# Python 3.11 pins pandas<3, which .venv must not get (see bench/README.md).
PEERS_VENV  := bench/.venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

bench: $(STAMP) $(if $(PEERS),$(PEERS_STAMP),)  ## quotes/s of the Paper Broker (PEERS=1: also NautilusTrader, backtrader)
	$(PY) -m bench.broker_bench $(if $(PEERS),--peers,) $(BENCH_ARGS)
	$(PY) -m bench.strategy_bench $(if $(PEERS),--peers,)
	$(PY) -m bench.realtime_bench
	$(PY) -m bench.summary_bench
	$(PY) -m bench.recorder_bench
	$(PY) -m bench.compare_bench
	$(PY) -m bench.rolling_bench
	$(PY) -m bench.api_bench
	$(PY) -m bench.pages_bench

$(PEERS_STAMP): pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -e '.[bench]'
	touch $(PEERS_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required" or 0)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
