"""`python -m app.demo` (run by `make run`): a demo tenant and admin when none exist, and how
to use them. Credentials are also kept in var/demo-credentials.json (development only)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import Tenant, User
from app.services import tenants, users


def main() -> None:
    app = create_app()
    store = Path(app.config["VAR_DIR"]) / "demo-credentials.json"
    with app.app_context():
        saved = json.loads(store.read_text()) if store.exists() else {}
        if db.session.scalar(select(User).limit(1)) is None:
            password = secrets.token_urlsafe(12)
            users.create_user("admin@example.com", password, "admin", actor="demo")
            saved["admin"] = {"email": "admin@example.com", "password": password}
        if db.session.scalar(select(Tenant).limit(1)) is None:
            saved["tenant"] = tenants.create_tenant("demo", actor="demo").as_dict()
            _demo_router(saved["tenant"]["tenant_id"])
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(saved, indent=2))
    os.chmod(store, 0o600)
    port = app.config["PORT"]
    print(f"\nOpsdeck dev stack: http://127.0.0.1:{port}/  (health: /healthz, /readyz; API: /api/v1)")
    if "admin" in saved:
        print(f"  admin login: {saved['admin']['email']} / {saved['admin']['password']}")
    if "tenant" in saved:
        t = saved["tenant"]
        print(f"  API key: {t['key_id']}  secret: {t['secret']}")
        print(
            f"  try: OPSDECK_URL=http://127.0.0.1:{port} OPSDECK_KEY_ID={t['key_id']} OPSDECK_SECRET={t['secret']} \\"
        )
        print('       .venv/bin/opsdeck jobs submit system.echo --payload \'{"message": "hi"}\' --wait')
    print(f"  (credentials kept in {store})\n")


def _demo_router(tenant_id: str) -> None:
    """The dev stack's RouterOS API test server (supervisor/dev.conf, program `router`) and a plan."""
    from decimal import Decimal

    from app.services.provisioning import routers

    port = int(os.environ.get("OPSDECK_DEV_ROUTER_PORT", "18728"))
    routers.create_router(
        tenant_id,
        {
            "name": "demo router",
            "host": "127.0.0.1",
            "port": port,
            "username": "admin",
            "password": "demo",
            "hotspot_server": "hotspot1",
        },
        actor="demo",
    )
    routers.create_plan(
        tenant_id,
        {
            "name": "1 hour",
            "price": Decimal("10"),
            "currency": "KES",
            "duration_seconds": 3600,
            "rate_limit": "2M/2M",
            "shared_users": 1,
            "profile": "opsdeck-1h",
        },
        actor="demo",
    )
    db.session.commit()


if __name__ == "__main__":
    main()
