# Prizeflow: the README's two commands are `make run` and `make test`.
# `make` bootstraps uv from PyPI when it is missing (into .devstack/tools, no system changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.devstack/tools/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# The official AsyncAPI parser (Node), pinned in tools/asyncapi-lint/package-lock.json; the tests and lint run it.
ASYNCAPI_LINT := tools/asyncapi-lint
ASYNCAPI_LINT_STAMP := $(ASYNCAPI_LINT)/node_modules/.installed
# The console's browser code (htmx, vendored into the package by build.mjs) and axe-core for the browser tests,
# pinned in services/console/frontend/package-lock.json.
CONSOLE_FRONTEND := services/console/frontend
CONSOLE_ASSETS_STAMP := $(CONSOLE_FRONTEND)/node_modules/.installed
# The browser tests drive Debian's /usr/bin/chromium (ensure-chromium.sh): no tool may download a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help run test deploy-test images test-unit test-integration lint fmt bench bench-check soak down status asyncapi sync system-deps asyncapi-lint-deps console-assets-deps k8s-tools k8s-validate cluster-deps cluster-build test-cluster

help:
	@echo "make run    - Kafka + PostgreSQL + every service + the demo, live in the terminal (Ctrl-C stops all)"
	@echo "make test   - make lint, then every test (unit, integration, e2e, faults) on real Kafka and PostgreSQL"
	@echo "make lint   - ruff, ruff format --check, mypy --strict, AsyncAPI, dashboards and vendored htmx staleness + the official AsyncAPI parser"
	@echo "make bench  - every benchmark; JSON under .results/"
	@echo "make bench-check - the short e2e bench of this checkout beside the reference commit docs/capacity.md names (fails >20% below it)"
	@echo "make soak   - the whole platform under a steady load for 30 min (SOAK_MINUTES), judged for leaks; .results/soak/"
	@echo "make deploy-test - images + docker-compose.yml under podman-compose and docker compose up --build + a smoke scenario through each"
	@echo "make down   - stop everything make run / make test started"

$(CURDIR)/.devstack/tools/bin/uv:
	python3 -m venv $(CURDIR)/.devstack/tools
	$(CURDIR)/.devstack/tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled once here (up-to-date files are skipped): with PYTHONDONTWRITEBYTECODE set, as on CI, Python
# never writes a .pyc and every process would compile every module it imports again (a service's start cost
# ~6.5 s of CPU instead of ~3 s, and the suite starts hundreds of them). Test modules are left to pytest.
sync: $(UV)
	$(UV) sync --frozen --all-packages
	@$(CURDIR)/.venv/bin/python -m compileall -q -j 0 -x '(node_modules|/tests/)' .venv/lib libs services tools

# Debian packages the tests need beyond the machine's baseline (SoftHSM2 for the signer's PKCS#11 backend;
# Prometheus + promtool for the alert-rule tests, the expression checks and the devstack's Prometheus; podman and
# Docker (docker.io, and the Compose v2 plugin built once from the Go module proxy) for the container tier;
# Chromium for the console's browser tests).
system-deps:
	bash tools/devstack/scripts/ensure-softhsm.sh
	bash tools/devstack/scripts/ensure-prometheus.sh
	bash tools/devstack/scripts/ensure-podman.sh
	bash tools/devstack/scripts/ensure-docker.sh
	bash tools/devstack/scripts/ensure-chromium.sh

# npm ci (exactly the lock file, no install scripts: see $(ASYNCAPI_LINT)/.npmrc) when node_modules is missing
# or older than the lock file; the stamp is written only after a complete install.
asyncapi-lint-deps: $(ASYNCAPI_LINT_STAMP)

$(ASYNCAPI_LINT_STAMP): $(ASYNCAPI_LINT)/package-lock.json $(ASYNCAPI_LINT)/package.json
	@command -v npm >/dev/null || { echo "asyncapi-lint-deps: npm (Node.js) is not installed" >&2; exit 1; }
	cd $(ASYNCAPI_LINT) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# The same for the console's browser assets (see $(CONSOLE_FRONTEND)/.npmrc).
console-assets-deps: $(CONSOLE_ASSETS_STAMP)

$(CONSOLE_ASSETS_STAMP): $(CONSOLE_FRONTEND)/package-lock.json $(CONSOLE_FRONTEND)/package.json
	@command -v npm >/dev/null || { echo "console-assets-deps: npm (Node.js) is not installed" >&2; exit 1; }
	cd $(CONSOLE_FRONTEND) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# Pinned kustomize and kube-score (Go, into .devstack/tools/go/bin) for the deploy/k8s tests; k8s-validate runs only those.
k8s-tools:
	bash tools/devstack/scripts/ensure-k8s-tools.sh

k8s-validate: sync k8s-tools
	$(RUN) pytest tests/deploy -m k8s $(PYTEST_ARGS)

# The one-node Kubernetes of the rehearsal: Debian's containerd, runc, CNI plugins and registry, then every other
# component built from the Go module proxy and Maven Central into .devstack/cluster (cached; docs/deploy.md
# "The rehearsal" gives the cold cost).
cluster-deps: k8s-tools
	bash tools/devstack/scripts/ensure-cluster-deps.sh

cluster-build: sync cluster-deps
	$(RUN) prizeflow-cluster build

# The rehearsal (tests/k8s, marker `cluster`): the production bundle installed, upgraded and restored on that cluster
# by the runbooks' own commands, a round paid before and after each. `make test` builds the cluster beside its
# other tiers (niced: it takes what they leave idle) and runs the rehearsal after them.
test-cluster: sync system-deps cluster-build
	$(RUN) pytest -m cluster tests/k8s --durations=10 $(PYTEST_ARGS)

run: sync system-deps
	$(RUN) prizeflow-dev run

# Lint first (seconds), then every test: CI (.ci/run) enforces both through this one target.
# The suite runs in lanes on the devstack's PostgreSQL and Kafka, started once up front so that no lane owns them:
# - the container tier (image builds, the compose stack under podman-compose and under `docker compose up --build`
#   on a dockerd of its own, testcontainers over podman) shares nothing with the devstack: beside everything (output
#   in .results/containers-tier.log, printed at the end; whole when it failed);
# - the payouts integration tests (the Stellar rail's fault, signature and flow tests: minutes of waiting on ledgers,
#   leases and processes, each test on its own databases and topics) beside the main lane (.results/lane-payouts.log);
# - the platform lane: the tests that run the whole platform as processes (end to end, adversarial, runbooks, the
#   console in a browser, conformance; they share a session platform), beside the main lane
#   (.results/lane-platform.log): both wait on processes and brokers more than they compute, so two lanes finish
#   sooner than one on two cores;
# - the main lane: everything else but the tests that restart the devstack's PostgreSQL or Kafka (marker
#   `restarts_infra`), which run last and alone, once every other lane is done.
# Any lane failing fails `make test`. CI stops the infrastructure at the end.
# Beside them, the Kafka topic provisioning tests (minutes of the broker creating and growing every topic, little
# of our CPU), one file in each side lane, and two suites of the main lane's heaviest (the Soroban emulator's,
# rewards' replicas): the lanes then end within a minute or two of each other instead of the main lane running on
# alone for three.
PAYOUTS_LANE := services/payouts/tests/integration libs/runtime/tests/integration/test_topics.py tools/soroban-emulator/tests
PLATFORM_LANE := tests/e2e tests/adversarial tests/runbooks tests/console tests/conformance tools/devstack/tests/test_topics.py \
	services/rewards/tests/integration/test_replicas_no_deadlocks.py
# Where the `restarts_infra` tests live (conftest.py refuses one marked elsewhere): collecting only these is seconds.
RESTARTS_INFRA := tests/faults tools/devstack/tests/test_integration.py

test: sync system-deps asyncapi-lint-deps console-assets-deps k8s-tools cluster-deps
	@$(MAKE) --no-print-directory lint
	@mkdir -p .results && rm -f .results/lane-main.rc
	@$(RUN) prizeflow-dev env > /dev/null
	@start=$$(date +%s); at() { echo "(+$$(( $$(date +%s) - start )) s)"; }; \
	nice -n 15 $(RUN) prizeflow-cluster build > .results/cluster-build.log 2>&1 & build=$$!; \
	$(RUN) pytest -s -m containers tests/containers $(PYTEST_ARGS) > .results/containers-tier.log 2>&1 & tier=$$!; \
	$(RUN) pytest -m "not containers and not restarts_infra and not cluster" --durations=15 $(PAYOUTS_LANE) $(PYTEST_ARGS) > .results/lane-payouts.log 2>&1 & payouts=$$!; \
	$(RUN) pytest -m "not containers and not restarts_infra and not cluster" --durations=15 $(PLATFORM_LANE) $(PYTEST_ARGS) > .results/lane-platform.log 2>&1 & platform=$$!; \
	{ $(RUN) pytest -m "not containers and not restarts_infra and not cluster" --durations=25 $(foreach d,$(PAYOUTS_LANE) $(PLATFORM_LANE),--ignore=$(d)) $(PYTEST_ARGS); echo $$? > .results/lane-main.rc; } 2>&1 | tee .results/lane-main.log; main=$$(cat .results/lane-main.rc); \
	wait $$payouts; lane=$$?; [ $$lane -eq 5 ] && lane=0; \
	echo "--- payouts integration lane (beside the main lane; full log: .results/lane-payouts.log) --- $$(at)"; \
	if [ $$lane -ne 0 ]; then cat .results/lane-payouts.log; else tail -5 .results/lane-payouts.log; fi; \
	wait $$platform; plane=$$?; [ $$plane -eq 5 ] && plane=0; \
	echo "--- platform lane (beside the main lane; full log: .results/lane-platform.log) --- $$(at)"; \
	if [ $$plane -ne 0 ]; then cat .results/lane-platform.log; else tail -5 .results/lane-platform.log; fi; \
	echo "--- tests that restart the devstack's PostgreSQL or Kafka (alone, last) --- $$(at)"; \
	$(RUN) pytest -m "restarts_infra and not containers and not cluster" --durations=5 $(RESTARTS_INFRA) $(PYTEST_ARGS); restarts=$$?; [ $$restarts -eq 5 ] && restarts=0; \
	wait $$tier; containers=$$?; \
	echo "--- container tier (tests/containers, beside the suite; full log: .results/containers-tier.log) --- $$(at)"; \
	if [ $$containers -ne 0 ]; then cat .results/containers-tier.log; else grep -v "systemd connection" .results/containers-tier.log | tail -40; fi; \
	if [ "$${CI:-}" = "true" ] || [ "$${CI:-}" = "1" ]; then $(RUN) prizeflow-dev down > /dev/null; fi; \
	echo "--- the rehearsal on the one-node Kubernetes (alone, last; every command it ran: .results/k8s-rehearsal.log) --- $$(at)"; \
	wait $$build || { cat .results/cluster-build.log; exit 1; }; tail -3 .results/cluster-build.log; echo "the cluster's components built $$(at)"; \
	$(RUN) pytest -m cluster tests/k8s --durations=10 $(PYTEST_ARGS); cluster=$$?; \
	if [ "$${CI:-}" = "true" ] || [ "$${CI:-}" = "1" ]; then $(RUN) prizeflow-cluster down > /dev/null; fi; \
	echo "--- the rehearsal ended $$(at) ---"; \
	ok=1; [ $$main -eq 0 ] && [ $$lane -eq 0 ] && [ $$plane -eq 0 ] && [ $$restarts -eq 0 ] && [ $$containers -eq 0 ] && [ $$cluster -eq 0 ] || ok=0; \
	if [ $$ok -eq 0 ]; then \
	  echo "--- what failed, in every lane (its assertion lines; the whole logs are in .results/) ---"; \
	  grep -hE "^(FAILED|ERROR) |^E  " .results/lane-*.log .results/containers-tier.log 2>/dev/null | cut -c1-300 | head -80; \
	fi; \
	[ $$ok -eq 1 ]

test-unit: sync
	$(RUN) pytest -m "not integration and not e2e and not faults and not containers and not k8s and not browser and not cluster" $(PYTEST_ARGS)

# The images (offline, podman), docker-compose.yml under podman-compose and under `docker compose up --build` (Docker's
# own engine), a sponsored round paid through each, and everything torn down. `make test` runs it too (marker
# `containers`).
deploy-test: sync system-deps
	$(RUN) pytest -s -m containers tests/containers $(PYTEST_ARGS)

# The platform's container images, built offline from a host wheelhouse; sizes in .results/images.json.
images: sync system-deps
	$(RUN) prizeflow-dev images

test-integration: sync system-deps asyncapi-lint-deps
	$(RUN) pytest -m integration $(PYTEST_ARGS)

lint: sync asyncapi-lint-deps console-assets-deps
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) prizeflow-asyncapi --check
	$(RUN) prizeflow-dashboards --check
	node $(CONSOLE_FRONTEND)/build.mjs --check
	@out=$$(node $(ASYNCAPI_LINT)/validate.mjs --fail-on=warning docs/asyncapi.yaml) \
		&& echo "AsyncAPI parser: no errors or warnings in docs/asyncapi.yaml" \
		|| { echo "$$out"; echo "docs/asyncapi.yaml: the AsyncAPI parser reports errors or warnings" >&2; exit 1; }

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: sync system-deps
	$(RUN) prizeflow-dev bench

# Not part of `make test`: the short e2e bench of this checkout beside the reference commit docs/capacity.md names,
# same machine, same sitting; fails when a figure is more than 20 % below the reference's
# (tools/devstack/src/prizeflow_devstack/bench_check.py).
bench-check: sync system-deps
	$(RUN) prizeflow-dev bench-check

# Not part of `make test`: the whole platform under a steady load for SOAK_MINUTES (30), sampled every
# SOAK_INTERVAL_S (10), failed on a leak, a rising p99 or a bounded table growing (docs/soak.md). Its options read
# SOAK_<OPTION> (SOAK_ROUNDS_PER_S, SOAK_PAYOUTS_PER_S, SOAK_INTERVAL_S, ...) or come in SOAK_ARGS.
SOAK_ARGS ?=
soak: sync system-deps
	$(RUN) prizeflow-dev soak $(SOAK_ARGS)

asyncapi: sync
	$(RUN) prizeflow-asyncapi

down: $(UV)
	$(RUN) prizeflow-dev down

status: $(UV)
	$(RUN) prizeflow-dev status
