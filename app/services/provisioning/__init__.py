"""Provisioning: routers and plans (routers), M-Pesa callbacks (mpesa), payments, subscriptions
and vouchers, and the RouterOS API calls they make (hotspot)."""
