"""One marshmallow schema per provisioning resource (loading and dumping)."""

from __future__ import annotations

import decimal
import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from app.api.openapi import CURSOR
from app.api.validation import Boolean, Pattern
from app.models.provisioning import PAYMENT_STATES, SUBSCRIPTION_STATES
from app.services.provisioning import phones, routers, vouchers

MAC = Pattern(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", error="Use six hex pairs, e.g. AA:BB:CC:DD:EE:FF.")
NAME = Pattern(r"^[A-Za-z0-9_.\-]{1,64}$", error="Letters, digits, '.', '_' or '-' (up to 64).")
ROUTEROS_TIME = Pattern(
    r"^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$", error="A RouterOS duration like 1h30m or 1d."
)
#: RouterOS rate-limit: rx/tx with optional k/M/G, then optional bursts ("2M/2M", "512k/1M 1M/2M").
RATE_LIMIT = Pattern(r"^[0-9]+[kKMG]?/[0-9]+[kKMG]?( [^\r\n\u2028\u2029]*)?$", error='Like "2M/2M" (rx/tx).')
#: An amount as answered: a decimal string with cents.
AMOUNT = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$"}
#: The largest price the database holds (12 digits, 2 after the point).
MAX_PRICE = decimal.Decimal("9999999999.99")
#: The longest plan or extension, in seconds (about 31 years): the database keeps 32-bit seconds.
MAX_DURATION = 999_999_999
#: A duration as text: a number and a unit (seconds if none), each unit kept under MAX_DURATION.
DURATION_TEXT = r"^0*([1-9][0-9]{0,8}s?|[1-9][0-9]{0,6}m|[1-9][0-9]{0,4}h|[1-9][0-9]{0,3}d|[1-9][0-9]{0,2}w)$"


class Duration(fields.Field):
    """30d, 12h, 90m, 3600s, 1w or a number of seconds; loaded as seconds."""

    default_error_messages = {"invalid": f"A duration like 30d, 12h, 90m or a number of seconds (1 to {MAX_DURATION})."}

    def __init__(self, **kwargs: Any) -> None:
        json_schema = {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_DURATION},
                {"type": "string", "pattern": DURATION_TEXT},
            ],
            "description": "30d, 12h, 90m, 1w or seconds",
        }
        super().__init__(metadata={"json_schema": json_schema}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.make_error("invalid")
        if isinstance(value, int) and not 1 <= value <= MAX_DURATION:
            raise self.make_error("invalid")
        if isinstance(value, str) and re.fullmatch(DURATION_TEXT, value) is None:
            raise self.make_error("invalid")
        return routers.parse_duration(value)


class Phone(fields.String):
    """A phone number in any form `phones.normalise` reads; loaded as E.164 (`+254712345678`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"json_schema": phones.json_schema}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return phones.normalise(super()._deserialize(value, attr, data, **kwargs))
        except phones.InvalidPhone as err:
            raise ValidationError(str(err)) from None


class Money(fields.Decimal):
    """An amount above 0 with cents: a JSON number (rounded half up to cents) or a decimal string;
    answered as a string."""

    TEXT = r"^(?=.*[1-9])[0-9]{1,10}(\.[0-9]{1,2})?$"

    def __init__(self, **kwargs: Any) -> None:
        json_schema = {
            "anyOf": [
                {"type": "number", "minimum": 0.005, "maximum": float(MAX_PRICE)},
                {"type": "string", "pattern": self.TEXT},
            ]
        }
        super().__init__(
            places=2, rounding=decimal.ROUND_HALF_UP, as_string=True, metadata={"json_schema": json_schema}, **kwargs
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> decimal.Decimal:
        if isinstance(value, str) and re.fullmatch(self.TEXT, value) is None:
            raise self.make_error("invalid")
        amount = super()._deserialize(value, attr, data, **kwargs)
        if not 0 < amount <= MAX_PRICE:
            raise ValidationError(f"Must be greater than 0 and at most {MAX_PRICE}.")
        return amount


class Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class RouterSchema(Strict):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=65535))
    tls = Boolean(load_default=False)
    tls_verify = Boolean(load_default=True)
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=0, max=200))
    hotspot_server = fields.String(load_default="all", validate=validate.Length(min=1, max=100))
    status = fields.String(dump_only=True)
    version = fields.String(dump_only=True, allow_none=True)
    uptime = fields.String(dump_only=True, allow_none=True)
    cpu_load = fields.Integer(dump_only=True, allow_none=True)
    free_memory = fields.Integer(dump_only=True, allow_none=True)
    board_name = fields.String(dump_only=True, allow_none=True)
    checked_at = fields.DateTime(dump_only=True, allow_none=True)
    last_error = fields.String(dump_only=True, allow_none=True)
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
    price = Money(required=True)
    currency = fields.String(load_default="KES", validate=Pattern(r"^[A-Z]{3}$", error="ISO 4217, e.g. KES."))
    duration = Duration(required=True, load_only=True)
    duration_seconds = fields.Integer(dump_only=True)
    rate_limit = fields.String(load_default=None, allow_none=True, validate=(validate.Length(max=100), RATE_LIMIT))
    uptime_limit = fields.String(load_default=None, allow_none=True, validate=(validate.Length(max=30), ROUTEROS_TIME))
    data_limit_bytes = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=2**63 - 1)
    )
    shared_users = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=1000))
    profile = fields.String(load_default=None, validate=NAME)
    active = Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)

    @post_load
    def _derive(self, data: dict[str, Any], partial: Any = None, **_: Any) -> dict[str, Any]:
        if "duration" in data:
            data["duration_seconds"] = data.pop("duration")
        if not partial and not data.get("profile"):
            data["profile"] = default_profile(data["name"])
        return data


def default_profile(plan_name: str) -> str:
    """The hotspot user profile of a plan that names none."""
    return "opsdeck-" + (re.sub(r"[^A-Za-z0-9_.\-]+", "-", plan_name).strip("-")[:50] or "plan")


class PaymentSchema(Strict):
    id = fields.String(dump_only=True)
    checkout_request_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    phone = Phone(required=True)
    mac = fields.String(load_default=None, allow_none=True, validate=MAC)
    status = fields.String(dump_only=True, metadata={"enum": list(PAYMENT_STATES)})
    amount_expected = fields.Decimal(dump_only=True, as_string=True, metadata={"json_schema": AMOUNT})
    amount_paid = fields.Decimal(dump_only=True, as_string=True, allow_none=True, metadata={"json_schema": AMOUNT})
    receipt_number = fields.String(dump_only=True, allow_none=True)
    transaction_date = fields.String(dump_only=True, allow_none=True)
    result_code = fields.Integer(dump_only=True, allow_none=True)
    result_desc = fields.String(dump_only=True, allow_none=True)
    merchant_request_id = fields.String(dump_only=True, allow_none=True)
    subscription_id = fields.String(dump_only=True, allow_none=True)
    callbacks = fields.Integer(dump_only=True)
    callback_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class SubscriptionSchema(Strict):
    id = fields.String(dump_only=True)
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    phone = Phone(load_default=None, allow_none=True, load_only=True)
    mac = fields.String(load_default=None, allow_none=True, validate=MAC)
    username = fields.String(load_default=None, validate=NAME)
    #: The customer's hotspot password: given on creation, or generated; readable by the tenant.
    password = fields.String(load_default=None, validate=validate.Length(min=4, max=64))
    subscriber_id = fields.String(dump_only=True, allow_none=True)
    payment_id = fields.String(dump_only=True, allow_none=True)
    source = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(SUBSCRIPTION_STATES)})
    starts_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)
    provisioned_at = fields.DateTime(dump_only=True, allow_none=True)
    expired_at = fields.DateTime(dump_only=True, allow_none=True)
    attempts = fields.Integer(dump_only=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class ExtendSchema(Strict):
    #: Loaded as seconds.
    duration = Duration(required=True)


class VoucherSchema(Strict):
    plan_id = fields.String(required=True)
    router_id = fields.String(required=True)
    count = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=vouchers.MAX_BATCH))
    prefix = fields.String(load_default="", validate=Pattern(r"^[A-Za-z0-9_\-]{0,10}$"))
    length = fields.Integer(strict=True, load_default=6, validate=validate.Range(min=4, max=16))
    charset = fields.String(load_default="lower", validate=validate.OneOf(list(vouchers.CHARSETS)))
    same_password = Boolean(load_default=True)


class ListArgs(Strict):
    cursor = fields.String(load_default=None, metadata=CURSOR)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PaymentListArgs(ListArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(PAYMENT_STATES))


class SubscriptionListArgs(ListArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(SUBSCRIPTION_STATES))


class CallbackUrlSchema(Schema):
    url = fields.String(required=True)


class VoucherBatchSchema(Schema):
    data = fields.List(fields.Nested(SubscriptionSchema), required=True)
