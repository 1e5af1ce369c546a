# Contacts, live — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/services/command-api:$(CURDIR)/services/query-api:$(CURDIR)/services/history-worker:$(CURDIR)/services/notifier
export DATABASE_URL ?= postgresql://postgres@localhost:5432/contacts
export AMQP_URL ?= amqp://localhost:5672/%2F

REQUIREMENTS := requirements-dev.txt shared/requirements.txt $(wildcard services/*/requirements.txt)

.PHONY: seed install migrate console web gateway-tools browser-tools bench-tools run test web-test unit integration faults lint bench \
	compose-test

## install: the virtualenv with every service's dependencies (only when a requirements file changed)
install: $(VENV)/.installed
$(VENV)/.installed: $(REQUIREMENTS)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

## migrate: create the database named by DATABASE_URL if absent and apply every migration
migrate: install
	python -m shared.migrate

## seed: COUNT sample contacts (default 500; names in several scripts) through the write path, as an import job
COUNT ?= 500
seed: migrate
	python -m sample_data $(COUNT)

## web: the browser app, built into services/web/dist when its sources change
WEB_SOURCES := $(shell find services/web/src services/web/index.html services/web/package-lock.json services/web/vite.config.ts -type f 2>/dev/null)
web: services/web/dist/index.html
services/web/dist/index.html: $(WEB_SOURCES)
	cd services/web && npm ci --no-audit --no-fund && npm run build

## gateway-tools, browser-tools, bench-tools: system packages, installed when missing (needs apt-get and root)
gateway-tools:
	@$(call system-package,nginx,nginx-light)
browser-tools:
	@$(call system-package,chromium,chromium)
bench-tools:
	@$(call system-package,wrk,wrk)
	@$(call system-package,pgbench,postgresql-contrib)
system-package = command -v $(1) >/dev/null || { command -v apt-get >/dev/null \
	&& { apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; }; } || { echo "please install $(2)"; exit 1; }

## console: turn on RabbitMQ's management console when this machine runs the broker
console:
	@if command -v rabbitmq-plugins >/dev/null 2>&1; then \
	  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 \
	    && echo "RabbitMQ console: http://localhost:15672" \
	    || echo "could not enable the RabbitMQ console here (not the broker's host, or no rights)"; \
	fi

## run: the whole stack against DATABASE_URL / AMQP_URL, logs in one terminal, Ctrl-C stops all; the first admin
## when there is no user (ADMIN_USERNAME / ADMIN_PASSWORD, else a random password shown once); without
## IDENTITY_SIGNING_KEYS a key made for this run signs the tokens (they end with it)
run: migrate console web gateway-tools
	@if [ -z "$$IDENTITY_SIGNING_KEYS" ]; then \
	  echo "IDENTITY_SIGNING_KEYS is unset: signing tokens with a key made for this run"; \
	  IDENTITY_SIGNING_KEYS="[\"$$(python -c 'import secrets; print(secrets.token_hex(32))')\"]"; \
	fi; \
	export IDENTITY_SIGNING_KEYS; \
	python -m command_api.accounts ensure-admin && honcho start -f Procfile

## test: every test, on the PostgreSQL and RabbitMQ named by TEST_DATABASE_URL / TEST_AMQP_URL (else testcontainers),
## with a Docker engine where one can run (deploy/with-docker.sh), so that tests/compose runs too
test: install console web-test web gateway-tools browser-tools
	deploy/with-docker.sh pytest

## compose-test: the whole stack in containers with docker-compose.local-images.yml (tests/compose): healthy, used
## through the gateway and the console, scaled out, a crash restarted, removed; then the cluster variant
## (docker-compose.cluster.yml): one cluster, reads from the replica, a node killed; Docker installed and started if missing
compose-test: install browser-tools
	deploy/with-docker.sh pytest tests/compose

## web-test: the browser app's component tests (Vitest)
web-test:
	cd services/web && npm ci --no-audit --no-fund && npm test

unit: install
	pytest tests/unit

integration: install console
	pytest tests/integration

## faults: the fault matrix with eight-second faults, and 90 s of fuzzing each interface (about ten minutes);
## its table lands in test-artifacts/fault-matrix.json (docs/reliability.md)
faults: install console
	FAULT_SECONDS=$${FAULT_SECONDS:-8} FUZZ_SECONDS=$${FUZZ_SECONDS:-90} pytest tests/faults tests/fuzz

lint: install
	ruff check .
	ruff format --check .
	mypy shared services tests bench sample_data

## bench: the benchmarks, each next to a baseline measured in the same run
bench: install console bench-tools
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$DATABASE_URL}" TEST_AMQP_URL="$${TEST_AMQP_URL:-$$AMQP_URL}" python -m bench $(SCENARIOS)
