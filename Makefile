# Opsdeck — the two commands are `make run` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: help run status stop screenshots test chaos chaos-ci chaos-hosts lint format bench docs docs-build deps system-deps python-deps client-deps migrate clean

## help: list these targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## //' -e 's/: /\t/' | expand -t 12

## run: install what is missing, migrate, create a demo tenant/admin, start the dev stack (supervisord)
run: deps
	@exec bash supervisor/dev-run.sh

## status: the dev stack's processes (supervisorctl)
status:
	@$(BIN)/supervisorctl -c supervisor/dev.conf status

## stop: stop the dev stack started by make run (every process, then supervisord)
stop:
	@$(BIN)/supervisorctl -c supervisor/dev.conf shutdown

## test: install what is missing, lint, build the docs, run the whole suite with the clients' (the fault suite apart)
test: TEST_TOOLS := 1
test: deps client-deps lint docs-build
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --durations=15 -m "not chaos"

## chaos: the fault suite (tests/chaos): kill workers, stop Redis, PostgreSQL and peers mid-run, reconcile
chaos: deps
	$(BIN)/pytest -q -p no:cacheprovider -m chaos tests/chaos

## chaos-ci: the fault suite's part CI runs after make test (about 6 minutes)
# 20 SIGKILLs across families, Redis down while the platform submits, Redis restarted with and
# without its data, the Sentinel master killed under load, every role on its own host with one
# powered off (skipped, saying why, where network namespaces cannot be made).
chaos-ci: deps
	$(BIN)/pytest -q -p no:cacheprovider -m chaos tests/chaos/test_worker_kills.py tests/chaos/test_redis.py \
		tests/chaos/test_sentinel.py tests/chaos/test_multihost.py

## chaos-hosts: the multi-host scenario alone (network namespaces made by the test; needs root)
chaos-hosts: deps
	$(BIN)/pytest -q -p no:cacheprovider -m chaos tests/chaos/test_multihost.py

## bench: the benchmarks in bench/, each printing ratios against a baseline from the same run
bench: deps
	$(BIN)/python -m bench

## screenshots: every admin page at 1440x900 in headless Chromium, into docs/assets/screenshots (not committed)
screenshots: deps
	$(BIN)/python -m bench.screenshots docs/assets/screenshots

## docs: serve the docs site on http://127.0.0.1:8000 with live reload
docs: deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

## docs-build: build the docs site into site/, failing on any warning (a broken link, a missing page)
docs-build: deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

## lint: ruff check, ruff format --check and mypy (app and workers; the Python client strict, by its own config)
lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd clients/python && ../../$(BIN)/mypy

## format: ruff format and ruff check --fix
format: deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## deps: install the Debian packages and Python requirements that are missing
deps: system-deps python-deps

# Debian packages, installed only when missing (CI and fresh machines run as root).
# redis-sentinel: the Sentinel tests' three sentinels (started on free ports; the package's own
# service, where systemd starts it, is not used).
# clamav-daemon, clamav (sigtool), clamdscan: the real clamd the scans family, its tests and
# bench P5 use; libmagic1: content-type detection of uploads.
# chromium (make test only): the admin pages' end-to-end tests (headless, driven by Playwright).
# prometheus (make test only, for promtool): checks the /metrics exposition. A large package that
# also installs a Prometheus server (started as a service where systemd runs); only promtool is used.
# nodejs, npm, php-cli, php-curl, php-mbstring, phpunit (make test only): the TypeScript and PHP
# clients' toolchains, which run their suites against a live Opsdeck; jq: the docs' shell examples.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-sentinel >/dev/null || missing="$$missing redis-sentinel"; \
	{ command -v clamd || test -x /usr/sbin/clamd; } >/dev/null || missing="$$missing clamav-daemon"; \
	command -v sigtool >/dev/null || missing="$$missing clamav"; \
	command -v clamdscan >/dev/null || missing="$$missing clamdscan"; \
	$(PYTHON) -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('magic'))" || missing="$$missing libmagic1"; \
	if [ "$(TEST_TOOLS)" = 1 ]; then \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  command -v php >/dev/null || missing="$$missing php-cli"; \
	  { command -v php >/dev/null && php -m | grep -qx curl; } || missing="$$missing php-curl"; \
	  { command -v php >/dev/null && php -m | grep -qx mbstring; } || missing="$$missing php-mbstring"; \
	  command -v phpunit >/dev/null || missing="$$missing phpunit"; \
	  command -v jq >/dev/null || missing="$$missing jq"; \
	fi; \
	$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install:$$missing)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

python-deps: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	@touch $@

# The TypeScript client's build tools (typescript, @types/node) from its lockfile.
client-deps: clients/typescript/node_modules/.package-lock.json

clients/typescript/node_modules/.package-lock.json: clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## migrate: apply the database migrations (flask db upgrade)
migrate: deps
	$(BIN)/flask db upgrade

## clean: remove the dev stack's database, logs and the test cache
clean:
	rm -rf var/*.db var/log .pytest_cache site
