#!/usr/bin/env bash
# `make run`: write .env once, load it (variables already in the environment win), empty the
# metrics directory, migrate, create the demo tenant and admin when none exist, then run
# supervisor/dev.conf in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bash supervisor/dev-env.sh > /dev/null
# .env read by python-dotenv, as the app reads it (quotes, `export NAME=…`, comments), as
# NUL-separated name/value pairs.
while IFS= read -r -d '' name && IFS= read -r -d '' value; do
  [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
  [ -n "${!name+x}" ] || export "$name=$value"
done < <(.venv/bin/python -c '
import sys
from dotenv import dotenv_values
for name, value in dotenv_values(".env").items():
    sys.stdout.write(f"{name}\0{value or str()}\0")
')
export FLASK_APP=wsgi.py OPSDECK_ENV="${OPSDECK_ENV:-development}"
# Readable log lines in the terminal (production default: JSON lines).
export LOG_FORMAT="${LOG_FORMAT:-text}"
export PORT="${PORT:-5000}" OPSDECK_DEV_REDIS_PORT="${OPSDECK_DEV_REDIS_PORT:-6390}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${OPSDECK_DEV_REDIS_PORT}/0}"
# The demo router: the RouterOS API test server (admin / demo) on this port.
export OPSDECK_DEV_ROUTER_PORT="${OPSDECK_DEV_ROUTER_PORT:-18728}"
# Webhook endpoints on this machine (a receiver on http://127.0.0.1:…) are allowed; production
# allows public addresses only. Set it, even empty, in the environment or .env to decide otherwise.
export WEBHOOK_ALLOWED_NETWORKS="${WEBHOOK_ALLOWED_NETWORKS-127.0.0.0/8,::1/128}"
# Mail goes to the stack's own SMTP sink (kept under var/mail/) unless SMTP_HOST is set.
export SMTP_HOST="${SMTP_HOST:-127.0.0.1}" SMTP_PORT="${SMTP_PORT:-1025}"
mkdir -p var/log
# Prometheus samples of every process (docs/operations.md, Metrics): a stack that starts starts from zero,
# before any process of it writes (the migration and demo below included).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${OPSDECK_VAR_DIR:-var}/metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
.venv/bin/flask db upgrade
.venv/bin/python -m app.demo
exec .venv/bin/supervisord -n -c supervisor/dev.conf
