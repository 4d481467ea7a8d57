# engine-gateway: `make run` starts the real engine and the gateway; `make test` runs it all.
SHELL := /bin/bash
ENGINE ?= operaton
# the engine's database in `make run` and the integration tests: h2 (a file) or postgres
DB ?= h2
VENV := .venv
PY := $(VENV)/bin/python
JAR := deploy/engine/target/engine-$(ENGINE).jar
ENGINE_SOURCES := deploy/engine/pom.xml $(shell find deploy/engine/src -type f 2>/dev/null)
MVN := mvn -B -q -Dstyle.color=never -f deploy/engine/pom.xml

.PHONY: image wheelhouse webapps-browser screenshots bench-json bench-scanning clamd-tools postgres-tools cluster bench-cluster bench bench-levers bench-profile bench-floors run test lint typecheck unit faults fuzz integration e2e e2e-tools k8s-tools deploy-check engine tools bench-memory bench-streams bench-names bench-engine-download bench-chart soak clean

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

# Debian's PostgreSQL server, for DB=postgres and the cluster tests (tests/cluster).
postgres-tools:
	@bash deploy/local/ensure-tools.sh '/usr/lib/postgresql/*/bin/postgres:postgresql'

# Debian's ClamAV daemon, for the scanning tests (tests/integration/test_scanning.py) and
# bench/scanning.py; they start it themselves, with the project's own signatures (deploy/clamd).
clamd-tools:
	@bash deploy/local/ensure-tools.sh clamd:clamav-daemon

# kustomize, for the tests in tests/deploy.
k8s-tools:
	@bash deploy/local/ensure-k8s-tools.sh

# CLAMD=on: the gateway scans with Debian's clamd, loaded with the project's test signatures
CLAMD ?= off
run: $(VENV)/.installed $(JAR) $(if $(filter postgres,$(DB)),postgres-tools) $(if $(filter on,$(CLAMD)),clamd-tools)
	ENGINE=$(ENGINE) DB=$(DB) CLAMD=$(CLAMD) bash deploy/local/run.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

faults: $(VENV)/.installed
	$(PY) -m pytest -q tests/faults

# atheris on the pure parsers (tests/fuzz), FUZZ_SECONDS each; `make -j3 fuzz` runs them side
# by side. New corpus entries go to .fuzz/<target> (gitignored), next to the seeds in
# tests/fuzz/corpus/<target>; a crashing input to .fuzz/<target>-crash-<sha1>. `make test`
# runs each for a minute (tests/fuzz/test_fuzz_short.py).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := headers disposition multipart jsonvalues
FUZZ_RUNS := $(addprefix fuzz-,$(FUZZ_TARGETS))
.PHONY: $(FUZZ_RUNS)

fuzz: $(FUZZ_RUNS)

$(FUZZ_RUNS): fuzz-%: $(VENV)/.installed
	@mkdir -p .fuzz/$*
	$(PY) -m tests.fuzz.$*_target -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
		-artifact_prefix=.fuzz/$*- .fuzz/$* tests/fuzz/corpus/$*

integration: $(VENV)/.installed $(JAR) clamd-tools $(if $(filter postgres,$(DB)),postgres-tools)
	ENGINE=$(ENGINE) DB=$(DB) $(PY) -m pytest -q tests/integration

e2e: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) -m pytest -q tests/e2e

# Cockpit, Tasklist and Admin in headless Chromium, through the gateway and direct
# (tests/e2e/test_webapps_in_chromium.py); CI runs it against each engine.
webapps-browser: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) -m pytest -q tests/e2e/test_webapps_in_chromium.py

# docs/cockpit.png: Cockpit served through the gateway, as the Chromium test sees it.
screenshots: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) SCREENSHOT_DIR=docs $(PY) -m pytest -q tests/e2e/test_webapps_in_chromium.py -k screenshot

# Both images into podman's storage: localhost/engine-gateway:<version> and
# localhost/engine-gateway-engine:<engine>-<version>, on bases made from Debian's packages
# (deploy/images: build.sh, base.sh, containers.conf); tests/images runs them.
image: $(VENV)/.installed $(JAR)
	PYTHON=$(PY) bash deploy/images/build.sh $(ENGINE)

# build/wheelhouse alone: what `docker build .` needs where a registry is reachable.
wheelhouse: $(VENV)/.installed
	PYTHON=$(PY) bash deploy/images/wheelhouse.sh

deploy-check: $(VENV)/.installed k8s-tools
	$(PY) -m pytest -q tests/deploy

test: $(VENV)/.installed $(JAR) e2e-tools k8s-tools postgres-tools clamd-tools lint typecheck
	ENGINE=$(ENGINE) DB=$(DB) $(PY) -m pytest -q -ra tests

# The gateway side by side with direct and nginx, all cases in one run (bench/compare.py),
# then the README's tables and docs/compare.png from the results (bench/report.py).
bench: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) bench/compare.py
	$(PY) bench/report.py

bench-levers: $(VENV)/.installed e2e-tools
	$(PY) bench/levers.py

bench-profile: $(VENV)/.installed e2e-tools
	$(PY) bench/profile.py

# The least a Python relay of an upload and an aiohttp server's small call cost here,
# beside the gateway's figures (bench/results/floors.json).
bench-floors: $(VENV)/.installed e2e-tools
	$(PY) bench/floors.py

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

# What inspecting uploads costs: digests off/on/verified and clamd, 100 MB and 1 GiB, to the
# stub and the real engine (bench/results/scanning.json).
bench-scanning: $(VENV)/.installed $(JAR) clamd-tools
	ENGINE=$(ENGINE) $(PY) bench/scanning.py

# A 14 MB file base64 in JSON, direct, through nginx, the gateway and the gateway scanning
# with clamd, to the stub and the real engine (bench/results/json_files.json).
bench-json: $(VENV)/.installed $(JAR) e2e-tools clamd-tools
	ENGINE=$(ENGINE) $(PY) bench/json_files.py

# The engine cluster measured: failover as seen by clients, PostgreSQL against H2, and
# throughput through nginx to two pairs and to one (bench/results/cluster.json).
bench-cluster: $(VENV)/.installed $(JAR) e2e-tools postgres-tools
	ENGINE=$(ENGINE) $(PY) bench/cluster.py

# Mixed traffic through the gateway to the real engine, every transfer checked by SHA-256;
# bench/results/soak.json and docs/soak.png. `make test` runs it for 2 minutes.
SOAK_SECONDS ?= 1800
soak: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/soak.py --seconds $(SOAK_SECONDS)

# PostgreSQL, two engine nodes on it, a gateway before each, nginx balancing the gateways
# (tests/cluster/nodes.py), on CLUSTER_PORT (8088), until Ctrl-C.
CLUSTER_PORT ?= 8088
cluster: $(VENV)/.installed $(JAR) e2e-tools postgres-tools
	ENGINE=$(ENGINE) CLUSTER_PORT=$(CLUSTER_PORT) $(PY) -m tests.cluster

clean:
	rm -rf deploy/engine/target .data .tools .mypy_cache .ruff_cache .pytest_cache
