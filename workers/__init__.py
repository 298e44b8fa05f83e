"""Dramatiq entry point: `dramatiq workers --queues …` imports this package in every worker
process, which builds the Flask app, configures the broker, then declares the actors.

Importing anything under workers/ therefore builds an app from the environment: the logic
lives in app/services/ and tests import it from there.
"""

from __future__ import annotations

import logging

from app import create_app
from app.telemetry import logs
from workers import runtime as _broker

for _name in ("alembic", "apscheduler"):  # chatty at INFO; their warnings still show
    logging.getLogger(_name).setLevel(logging.WARNING)

app = create_app()
logs.configure(app.config)
broker = _broker.setup(app)

from workers import email, provisioning, retention, scans, system, webhooks  # noqa: E402,F401  (actors bind to the broker configured above)
