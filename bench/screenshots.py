"""Screenshots of every admin page at 1440x900 in headless Chromium, against a stack of its own
(a private Redis, a SQLite file, the production web command and one worker group) seeded with a
tenant, finished, dead and waiting jobs and a few feed events.

    .venv/bin/python -m bench.screenshots [folder]     (default: var/screenshots)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

PASSWORD = "screenshots password 1234"
WIDTH, HEIGHT = 1440, 900


def _seed() -> None:
    from app.extensions import db
    from app.services import jobs, stats, tenants, users

    users.create_user("admin@example.com", PASSWORD, "admin")
    acme = tenants.create_tenant("acme")
    for i in range(12):
        jobs.submit("system.echo", {"message": f"hello {i}"}, tenant_id=acme.tenant_id)
    for i in range(3):
        jobs.submit("system.echo", {"message": f"doomed {i}", "fail": True}, tenant_id=acme.tenant_id, max_attempts=1)
    db.session.commit()
    stats.count({"succeeded": 40, "failed": 3})


def main(folder: Path) -> None:
    import requests
    from playwright.sync_api import sync_playwright

    from app import create_app
    from app.config import TestConfig, _normalise_db_url
    from app.extensions import db
    from app.jobtypes import all_queue_names
    from tests.fakes.processes import Process, RedisServer, free_port, wait_until, web_command, worker_command

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="opsdeck-shots-"))
    redis = RedisServer().start()
    started: list[Process] = []
    try:
        key = Fernet.generate_key().decode()
        url_db = _normalise_db_url(f"sqlite:///{tmp / 'opsdeck.db'}")
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=url_db, REDIS_URL=redis.url, OPSDECK_ENCRYPTION_KEYS=[key]))
        with app.app_context():
            db.create_all()
            _seed()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "OPSDECK_"))},
            "DATABASE_URL": url_db,
            "REDIS_URL": redis.url,
            "SECRET_KEY": "screenshots",
            "OPSDECK_ENCRYPTION_KEYS": key,
            "OPSDECK_ENV": "test",
            "SCAN_STORAGE_URL": (tmp / "files").as_uri(),
            "SCAN_QUARANTINE_URL": (tmp / "quarantine").as_uri(),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        }
        (tmp / "metrics").mkdir()
        port = free_port()
        started.append(Process(web_command(port), env, "web", tmp).start())
        started.append(Process(worker_command(all_queue_names(), 1, 2), env, "worker", tmp).start())
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(requests, base), 60, 0.2, what="web server")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(f"{base}/admin/login")
            page.screenshot(path=str(folder / "login.png"))
            page.fill("input[name=email]", "admin@example.com")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#feed-state:text('live')", timeout=15_000)
            page.wait_for_timeout(3000)  # the worker finishes the seeded jobs; the dashboard follows
            links = page.eval_on_selector_all(".top nav a", "as => as.map(a => [a.textContent.trim(), a.href])")
            job = page.goto(f"{base}/admin/jobs") and page.get_attribute("#jobs-table tbody tr a", "href")
            for label, href in [*links, ("Job detail", f"{base}{job}" if job else None)]:
                if not href:
                    continue
                page.goto(href)
                page.wait_for_selector("h1")
                page.wait_for_timeout(400)
                name = label.lower().replace(" & ", "-").replace(" ", "-")
                page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
                print(f"{folder / name}.png")
            browser.close()
    finally:
        for proc in started:
            proc.stop()
        redis.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _up(requests: object, base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=2).status_code == 200  # type: ignore[attr-defined]
    except Exception:
        return False


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "var/screenshots"))
