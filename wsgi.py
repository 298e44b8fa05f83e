"""WSGI entry point: `gunicorn wsgi:app`; `python wsgi.py` runs a development server on $PORT."""

from __future__ import annotations

from app import create_app
from app.extensions import socketio
from app.telemetry import logs

app = create_app()
logs.configure(app.config)

if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=app.config["PORT"], allow_unsafe_werkzeug=True)
