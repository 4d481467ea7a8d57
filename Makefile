# engine-gateway: `make run` starts the real engine and the gateway; `make test` runs it all.
SHELL := /bin/bash
ENGINE ?= operaton
VENV := .venv
PY := $(VENV)/bin/python
JAR := deploy/engine/target/engine-$(ENGINE).jar
ENGINE_SOURCES := deploy/engine/pom.xml $(shell find deploy/engine/src -type f 2>/dev/null)
MVN := mvn -B -q -Dstyle.color=never -f deploy/engine/pom.xml

.PHONY: bench bench-levers bench-profile run test lint typecheck unit faults integration e2e e2e-tools k8s-tools deploy-check engine tools bench-memory bench-streams bench-names bench-engine-download bench-chart clean

tools:
	@bash deploy/local/ensure-tools.sh

$(VENV)/.installed: pyproject.toml
	@bash deploy/local/ensure-tools.sh
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

$(JAR): $(ENGINE_SOURCES)
	@bash deploy/local/ensure-tools.sh
	$(MVN) -P$(ENGINE) package -DskipTests
	@touch $@

engine: $(JAR)

# Debian's Chromium, Prometheus (with promtool), nginx and wrk, for tests/e2e and bench/.
e2e-tools:
	@bash deploy/local/ensure-tools.sh chromium:chromium prometheus:prometheus promtool:prometheus nginx:nginx wrk:wrk

# kustomize, for the tests in tests/deploy.
k8s-tools:
	@bash deploy/local/ensure-k8s-tools.sh

run: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) bash deploy/local/run.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

faults: $(VENV)/.installed
	$(PY) -m pytest -q tests/faults

integration: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) -m pytest -q tests/integration

e2e: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) -m pytest -q tests/e2e

deploy-check: $(VENV)/.installed k8s-tools
	$(PY) -m pytest -q tests/deploy

test: $(VENV)/.installed $(JAR) e2e-tools k8s-tools lint typecheck
	ENGINE=$(ENGINE) $(PY) -m pytest -q -ra tests

# The gateway side by side with direct and nginx, all cases in one run (bench/compare.py),
# then the README's tables and docs/compare.png from the results (bench/report.py).
bench: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) bench/compare.py
	$(PY) bench/report.py

bench-levers: $(VENV)/.installed e2e-tools
	$(PY) bench/levers.py

bench-profile: $(VENV)/.installed e2e-tools
	$(PY) bench/profile.py

bench-memory: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/memory_100mb.py

bench-streams: $(VENV)/.installed
	$(PY) bench/streams.py

bench-chart: $(VENV)/.installed e2e-tools
	$(PY) bench/throughput_chart.py

bench-names: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/download_names.py

bench-engine-download: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/engine_download.py

clean:
	rm -rf deploy/engine/target .data .tools .mypy_cache .ruff_cache .pytest_cache
