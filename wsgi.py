"""WSGI entry point: `gunicorn wsgi:app`; `python wsgi.py` runs a development server on $PORT."""

from __future__ import annotations

import logging

from app import create_app
from app.extensions import socketio

app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    socketio.run(app, host="127.0.0.1", port=app.config["PORT"], allow_unsafe_werkzeug=True)
