#!/usr/bin/env bash
# Writes .env for the development stack once (random SECRET_KEY and encryption key); keeps an
# existing .env as it is. Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .env ]; then
  umask 077
  secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')
  fernet=$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
  cat > .env <<ENV
# Development settings written by \`make run\` (see docs/configuration.md). Not for production.
OPSDECK_ENV=development
SECRET_KEY=${secret}
OPSDECK_ENCRYPTION_KEYS=${fernet}
OPSDECK_DEV_REDIS_PORT=6390
PORT=5000
# REDIS_URL defaults to the dev stack's own redis-server on OPSDECK_DEV_REDIS_PORT.
# WEBHOOK_ALLOWED_NETWORKS defaults to loopback (127.0.0.0/8,::1/128) in the dev stack; set it
# empty here to refuse internal endpoints as production does.
ENV
fi
echo "$(pwd)/.env"
