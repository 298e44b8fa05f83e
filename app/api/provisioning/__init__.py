"""/api/v1/routers, /plans, /payments (with the M-Pesa callback), /subscriptions, /vouchers."""

from __future__ import annotations

from app.api.provisioning import payments, routers, subscriptions  # noqa: F401  (routes attach to bp)
