VENV ?= .venv
ZKCLI := /usr/share/zookeeper/bin/zkCli.sh

.PHONY: venv test compat-deps run run-standalone clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

test: venv compat-deps
	$(VENV)/bin/python -m pytest

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

run: venv
	$(VENV)/bin/python bin/nk-ensemble etc/node1.yaml etc/node2.yaml etc/node3.yaml

run-standalone: venv
	$(VENV)/bin/python bin/nookeeper-server etc/standalone.yaml

clean:
	rm -rf data $(VENV)
