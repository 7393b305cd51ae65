VENV ?= .venv
ZKCLI := /usr/share/zookeeper/bin/zkCli.sh

.PHONY: venv test compat-deps netns-deps run run-standalone clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: setup.py pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# Most tests wait on servers, sessions and timeouts, not the CPU: two
# pytest-xdist workers, each taking whole files, halve the wall time on two cores.
TEST_JOBS ?= 2

test: venv compat-deps netns-deps browser-deps
	$(VENV)/bin/python -m pytest -n $(TEST_JOBS) --dist loadfile

# The compat tests drive Apache ZooKeeper's own zkCli.sh against our server.
compat-deps:
	@if [ ! -e $(ZKCLI) ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			pkgs=zookeeper; \
			command -v java >/dev/null || pkgs="$$pkgs default-jre-headless"; \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs; \
		else \
			echo "compat-deps: $(ZKCLI) is missing and we are not root; compat tests will be skipped"; \
		fi; \
	fi

# The DataKeeper page test (tests/examples) drives Debian's headless chromium
# through its chromedriver with Selenium (the test extra); it skips without them.
.PHONY: browser-deps
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
		else \
			echo "browser-deps: chromium or chromedriver is missing and we are not root; the page test will be skipped"; \
		fi; \
	fi

# Longer runs of the fault tests inside make test: the ZAB simulation over more
# seeds, the request decoders over more examples, the Lock through more restarts.
.PHONY: soak
soak: venv compat-deps netns-deps
	NK_SIM_SEEDS=3000 NK_FUZZ_EXAMPLES=5000 NK_LOCK_RESTARTS=100 $(VENV)/bin/python -m pytest \
		tests/sim tests/unit/test_request_decoder_fuzz.py tests/integration/test_lock_restarts.py

# The partition tests put servers in network namespaces with iproute2's `ip` (as root).
netns-deps:
	@if ! command -v ip >/dev/null && [ ! -x /usr/sbin/ip ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2; \
	fi

# nookeeper against Apache ZooKeeper (docs/performance.md); BENCH_ARGS=--big adds
# the 1,000,000-znode memory and restart rows.
.PHONY: bench bench-long bench-deps
LOAD_GEN := /usr/lib/zookeeper/bin/load_gen
BENCH_ARGS ?=

bench: venv bench-deps
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-long: venv bench-deps
	$(VENV)/bin/python bench/run.py --long $(BENCH_ARGS)

bench-deps:
	@if [ ! -e $(ZKCLI) ] || [ ! -e $(LOAD_GEN) ] || ! command -v java >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			pkgs="zookeeper zookeeper-bin"; \
			command -v java >/dev/null || pkgs="$$pkgs default-jre-headless"; \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs; \
		else \
			echo "bench-deps: zookeeper, zookeeper-bin or java is missing and we are not root; the bench runs what it can"; \
		fi; \
	fi

run: venv
	$(VENV)/bin/python bin/nk-ensemble etc/node1.yaml etc/node2.yaml etc/node3.yaml

run-standalone: venv
	$(VENV)/bin/python bin/nookeeper-server etc/standalone.yaml

# DataKeeper, the example application (docs/datakeeper.md): three nodes on
# 127.0.0.1:8001-8003 against the ensemble of `make run`, started if it is not running.
.PHONY: datakeeper
datakeeper: venv
	$(VENV)/bin/python bin/datakeeper local

clean:
	rm -rf data $(VENV)
