"""Real-protocol peers the tests start: Redis, worker processes (and later SMTP, RouterOS, HTTP)."""
