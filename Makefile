# Prizeflow: the README's two commands are `make run` and `make test`.
# `make` bootstraps uv from PyPI when it is missing (into .devstack/tools, no system changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.devstack/tools/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help run test test-unit test-integration lint fmt bench down status asyncapi sync system-deps

help:
	@echo "make run    - Kafka + PostgreSQL + every service + the demo, live in the terminal (Ctrl-C stops all)"
	@echo "make test   - unit + integration (+ e2e) tests on real Kafka and PostgreSQL, provisioned automatically"
	@echo "make lint   - ruff, ruff format --check, mypy --strict, AsyncAPI staleness"
	@echo "make bench  - every benchmark; JSON under .results/"
	@echo "make down   - stop everything make run / make test started"

$(CURDIR)/.devstack/tools/bin/uv:
	python3 -m venv $(CURDIR)/.devstack/tools
	$(CURDIR)/.devstack/tools/bin/pip install --quiet "uv==$(UV_VERSION)"

sync: $(UV)
	$(UV) sync --frozen --all-packages

# Debian packages the tests need beyond the machine's baseline (SoftHSM2 for the signer's PKCS#11 backend).
system-deps:
	bash tools/devstack/scripts/ensure-softhsm.sh

run: sync system-deps
	$(RUN) prizeflow-dev run

test: sync system-deps
	$(RUN) pytest $(PYTEST_ARGS)

test-unit: sync
	$(RUN) pytest -m "not integration and not e2e and not faults" $(PYTEST_ARGS)

test-integration: sync system-deps
	$(RUN) pytest -m integration $(PYTEST_ARGS)

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) prizeflow-asyncapi --check

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: sync system-deps
	$(RUN) prizeflow-dev bench

asyncapi: sync
	$(RUN) prizeflow-asyncapi

down: $(UV)
	$(RUN) prizeflow-dev down

status: $(UV)
	$(RUN) prizeflow-dev status
