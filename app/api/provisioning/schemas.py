"""One marshmallow schema per provisioning resource (loading and dumping)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates

from app.models.provisioning import PAYMENT_STATES, SUBSCRIPTION_STATES
from app.services.provisioning import routers, vouchers

PHONE = validate.Regexp(r"^\+[1-9]\d{7,14}$", error="Use E.164, e.g. +254712345678.")
MAC = validate.Regexp(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", error="Use six hex pairs, e.g. AA:BB:CC:DD:EE:FF.")
NAME = validate.Regexp(r"^[A-Za-z0-9_.\-]{1,64}$", error="Letters, digits, '.', '_' or '-' (up to 64).")
ROUTEROS_TIME = validate.Regexp(r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", error="A RouterOS duration like 1h30m or 1d.")


def _positive(value: Any) -> None:
    if value <= 0:
        raise ValidationError("Must be greater than 0.")


class Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class RouterSchema(Strict):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(load_default=None, validate=validate.Range(min=1, max=65535))
    tls = fields.Boolean(load_default=False)
    tls_verify = fields.Boolean(load_default=True)
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=0, max=200))
    hotspot_server = fields.String(load_default="all", validate=validate.Length(min=1, max=100))
    status = fields.String(dump_only=True)
    version = fields.String(dump_only=True)
    uptime = fields.String(dump_only=True)
    cpu_load = fields.Integer(dump_only=True)
    free_memory = fields.Integer(dump_only=True)
    board_name = fields.String(dump_only=True)
    checked_at = fields.DateTime(dump_only=True)
    last_error = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)

    @post_load
    def _port(self, data: dict[str, Any], partial: Any = None, **_: Any) -> dict[str, Any]:
        if not partial and data.get("port") is None:
            data["port"] = 8729 if data.get("tls") else 8728
        if partial and data.get("port", 0) is None:
            data.pop("port")
        return data


class PlanSchema(Strict):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    price = fields.Decimal(required=True, as_string=True, places=2, validate=_positive,
                           metadata={"description": "greater than 0"})  # fmt: skip
    currency = fields.String(load_default="KES", validate=validate.Regexp(r"^[A-Z]{3}$", error="ISO 4217, e.g. KES."))
    duration = fields.Raw(required=True, load_only=True, metadata={"description": "30d, 12h, 90m or seconds"})
    duration_seconds = fields.Integer(dump_only=True)
    rate_limit = fields.String(load_default=None, allow_none=True,
                               validate=validate.Regexp(routers.RATE_LIMIT, error='Like "2M/2M" (rx/tx).'))  # fmt: skip
    uptime_limit = fields.String(load_default=None, allow_none=True, validate=ROUTEROS_TIME)
    data_limit_bytes = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    shared_users = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))
    profile = fields.String(load_default=None, validate=NAME)
    active = fields.Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)

    @post_load
    def _derive(self, data: dict[str, Any], partial: Any = None, **_: Any) -> dict[str, Any]:
        if "duration" in data:
            try:
                data["duration_seconds"] = routers.parse_duration(data.pop("duration"))
            except ValueError as err:
                raise ValidationError(str(err), field_name="duration") from None
        if not partial and not data.get("profile"):
            data["profile"] = "opsdeck-" + (re.sub(r"[^A-Za-z0-9_.\-]+", "-", data["name"]).strip("-")[:50] or "plan")
        return data


class PaymentSchema(Strict):
    id = fields.String(dump_only=True)
    checkout_request_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    phone = fields.String(required=True, validate=PHONE)
    mac = fields.String(load_default=None, allow_none=True, validate=MAC)
    status = fields.String(dump_only=True, metadata={"enum": list(PAYMENT_STATES)})
    amount_expected = fields.Decimal(dump_only=True, as_string=True)
    amount_paid = fields.Decimal(dump_only=True, as_string=True)
    receipt_number = fields.String(dump_only=True)
    transaction_date = fields.String(dump_only=True)
    result_code = fields.Integer(dump_only=True)
    result_desc = fields.String(dump_only=True)
    merchant_request_id = fields.String(dump_only=True)
    subscription_id = fields.String(dump_only=True)
    callbacks = fields.Integer(dump_only=True)
    callback_at = fields.DateTime(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class SubscriptionSchema(Strict):
    id = fields.String(dump_only=True)
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE, load_only=True)
    mac = fields.String(load_default=None, allow_none=True, validate=MAC)
    username = fields.String(load_default=None, validate=NAME)
    #: The customer's hotspot password: given on creation, or generated; readable by the tenant.
    password = fields.String(load_default=None, validate=validate.Length(min=4, max=64))
    subscriber_id = fields.String(dump_only=True)
    payment_id = fields.String(dump_only=True)
    source = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(SUBSCRIPTION_STATES)})
    starts_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)
    provisioned_at = fields.DateTime(dump_only=True)
    expired_at = fields.DateTime(dump_only=True)
    attempts = fields.Integer(dump_only=True)
    last_error = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class ExtendSchema(Strict):
    duration = fields.Raw(required=True, metadata={"description": "30d, 12h, 90m or seconds"})

    @validates("duration")
    def _duration(self, value: Any, **_: Any) -> None:
        try:
            routers.parse_duration(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None


class VoucherSchema(Strict):
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=vouchers.MAX_BATCH))
    prefix = fields.String(load_default="", validate=validate.Regexp(r"^[A-Za-z0-9_\-]{0,10}$"))
    length = fields.Integer(load_default=6, validate=validate.Range(min=4, max=16))
    charset = fields.String(load_default="lower", validate=validate.OneOf(list(vouchers.CHARSETS)))
    same_password = fields.Boolean(load_default=True)


class ListArgs(Strict):
    status = fields.String(load_default=None)
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class CallbackUrlSchema(Schema):
    url = fields.String()


class CountSchema(Schema):
    data = fields.List(fields.Dict())
