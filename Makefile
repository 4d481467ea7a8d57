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

.PHONY: docs seaweedfs-tools bench-documents bench-documents-api image wheelhouse webapps-browser screenshots bench-json bench-scanning clamd-tools postgres-tools cluster bench-cluster bench bench-levers bench-profile bench-floors run test lint typecheck unit faults fuzz integration e2e e2e-tools k8s-tools deploy-check engine tools bench-memory bench-streams bench-names bench-engine-download bench-chart soak clean

# Java and Maven from Debian's packages, if missing.
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

# The test engine's jar (deploy/engine: Spring Boot, ENGINE's REST API and webapps, from Maven Central).
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

# SeaweedFS (weed), built from the Go module proxy into .tools/bin (its module and build
# caches in .tools/go), for the document store's S3 tests.
seaweedfs-tools:
	@bash deploy/local/ensure-seaweedfs.sh

# kustomize, for the tests in tests/deploy.
k8s-tools:
	@bash deploy/local/ensure-k8s-tools.sh

# CLAMD=on: the gateway scans with Debian's clamd, loaded with the project's test signatures
CLAMD ?= off
# DOCUMENTS=file or s3: files over 1 MiB in a document store (docs/documents.md)
DOCUMENTS ?= off
# The real engine on :8080 and the gateway before it on :8000 (admin :8001), until Ctrl-C
# (deploy/local/run.sh); with DB=postgres, CLAMD=on, DOCUMENTS=file or s3, ENGINE=camunda.
run: $(VENV)/.installed $(JAR) $(if $(filter postgres,$(DB)),postgres-tools) $(if $(filter on,$(CLAMD)),clamd-tools) $(if $(filter s3,$(DOCUMENTS)),seaweedfs-tools)
	ENGINE=$(ENGINE) DB=$(DB) CLAMD=$(CLAMD) DOCUMENTS=$(DOCUMENTS) bash deploy/local/run.sh

# ruff check and ruff format --check.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy --strict on gateway, tests, bench and docs.
typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict

# The pure modules, without a network (tests/unit).
unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

# The fault matrix against stub upstreams (tests/faults).
faults: $(VENV)/.installed
	$(PY) -m pytest -q tests/faults

# atheris on the pure parsers (tests/fuzz), FUZZ_SECONDS each; `make -j3 fuzz` runs them side
# by side. New corpus entries go to .fuzz/<target> (gitignored), next to the seeds in
# tests/fuzz/corpus/<target>; a crashing input to .fuzz/<target>-crash-<sha1>. `make test`
# runs each for a minute (tests/fuzz/test_fuzz_short.py).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := headers disposition multipart jsonvalues reference ranges links
FUZZ_RUNS := $(addprefix fuzz-,$(FUZZ_TARGETS))
.PHONY: $(FUZZ_RUNS)
fuzz: $(FUZZ_RUNS)

$(FUZZ_RUNS): fuzz-%: $(VENV)/.installed
	@mkdir -p .fuzz/$*
	$(PY) -m tests.fuzz.$*_target -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
		-artifact_prefix=.fuzz/$*- .fuzz/$* tests/fuzz/corpus/$*

# The gateway in front of the real engine and Debian's clamd (tests/integration).
integration: $(VENV)/.installed $(JAR) clamd-tools seaweedfs-tools $(if $(filter postgres,$(DB)),postgres-tools)
	ENGINE=$(ENGINE) DB=$(DB) $(PY) -m pytest -q tests/integration

# Chromium, nginx and Prometheus with the real engine (tests/e2e).
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

# The Kubernetes manifests and the Dockerfile validated (tests/deploy).
deploy-check: $(VENV)/.installed k8s-tools
	$(PY) -m pytest -q tests/deploy

# Everything: lint, typecheck and every suite under tests/ (about 13 minutes from a fresh clone).
test: $(VENV)/.installed $(JAR) e2e-tools k8s-tools postgres-tools clamd-tools seaweedfs-tools lint typecheck
	ENGINE=$(ENGINE) DB=$(DB) $(PY) -m pytest -q -ra tests

# The gateway side by side with direct and nginx, all cases in one run (bench/compare.py),
# then docs/compare.png and docs/performance.md's tables from the results (bench/report.py).
bench: $(VENV)/.installed $(JAR) e2e-tools
	ENGINE=$(ENGINE) $(PY) bench/compare.py
	$(PY) bench/report.py

# Each lever (splice, uvloop, workers) against the defaults (bench/results/levers.json).
bench-levers: $(VENV)/.installed e2e-tools
	$(PY) bench/levers.py

# Where the time goes, sampled with py-spy (bench/results/profile.json).
bench-profile: $(VENV)/.installed e2e-tools
	$(PY) bench/profile.py

# The least a Python relay of an upload and an aiohttp server's small call cost here,
# beside the gateway's figures (bench/results/floors.json).
bench-floors: $(VENV)/.installed e2e-tools
	$(PY) bench/floors.py

# The gateway's memory while 100 MB goes through the real engine (bench/results/memory_100mb.json).
bench-memory: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/memory_100mb.py

# Memory per stream: 4 GiB one stream, 100 at once (bench/results/streams.json).
bench-streams: $(VENV)/.installed
	$(PY) bench/streams.py

# Throughput as Prometheus sees it during long transfers (docs/throughput.png).
bench-chart: $(VENV)/.installed e2e-tools
	$(PY) bench/throughput_chart.py

# Download names from the engine and through the gateway (bench/results/download_names.json).
bench-names: $(VENV)/.installed $(JAR)
	ENGINE=$(ENGINE) $(PY) bench/download_names.py

# One chunked download from the real engine, profiled (bench/results/engine_download.json).
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

# The document store measured: what the engine holds without and with one, 1 GiB up and
# down five ways, the gateway's memory at 4 GiB (bench/results/documents.json).
bench-documents: $(VENV)/.installed $(JAR) seaweedfs-tools
	ENGINE=$(ENGINE) $(PY) bench/documents.py

# The documents API measured: 1 GiB up and down by each of its ways beside a variable's and
# the store's own, and small reads by caller and by link (bench/results/documents_api.json).
bench-documents-api: $(VENV)/.installed $(JAR) seaweedfs-tools
	ENGINE=$(ENGINE) $(PY) bench/documentsapi.py

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

# The generated parts of README.md and docs/, from the code and bench/results (docs/generate.py).
docs: $(VENV)/.installed
	$(PY) -m docs.generate

# Removes what the targets built and cached (the engine's jar, .tools, .data, caches).
clean:
	rm -rf deploy/engine/target .data .tools .mypy_cache .ruff_cache .pytest_cache
