"""M-Pesa (Daraja) STK push callbacks: the tenant's callback token, who may call, and reading
`Body.stkCallback` exactly as Safaricom sends it."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.provisioning import MpesaToken
from app.services import crypto
from app.services.provisioning import phones

log = logging.getLogger(__name__)

#: Daraja's result codes and what they mean to an operator.
RESULT_MEANINGS = {
    0: "paid",
    1: "insufficient funds",
    17: "M-Pesa declined (risk limit)",
    26: "M-Pesa busy (system overload)",
    1001: "another M-Pesa transaction is in progress for this subscriber",
    1019: "the transaction expired",
    1025: "the prompt could not be sent",
    1032: "cancelled by the customer",
    1037: "the customer's phone could not be reached",
    2001: "wrong PIN",
    9999: "the prompt could not be sent",
}
#: The acknowledgement Daraja expects, whatever Opsdeck made of the callback.
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}


class BadCallback(ValueError):
    pass


@dataclass(frozen=True)
class Callback:
    merchant_request_id: str | None
    checkout_request_id: str
    result_code: int
    result_desc: str
    amount: Decimal | None = None
    receipt_number: str | None = None
    transaction_date: str | None = None
    phone: str | None = None

    @property
    def meaning(self) -> str:
        return RESULT_MEANINGS.get(self.result_code, f"M-Pesa result {self.result_code}")


MAX_AMOUNT = Decimal(10) ** 10  # payments.amount_paid is NUMERIC(12, 2)


def parse(body: Any) -> Callback:
    """Read `Body.stkCallback`; metadata items by `Name` (an item may lack `Value`, e.g. Balance)."""
    try:
        stk = body["Body"]["stkCallback"]
        checkout = str(stk["CheckoutRequestID"])
        code = int(stk["ResultCode"])
    except (KeyError, TypeError, ValueError) as err:
        raise BadCallback(f"not an STK callback: {err}") from None
    if not 0 < len(checkout) <= 100 or "\x00" in checkout:
        raise BadCallback("CheckoutRequestID is empty, too long or holds a NUL")
    if not -(2**31) <= code < 2**31:
        raise BadCallback("ResultCode is out of range")
    items: dict[str, Any] = {}
    metadata = stk.get("CallbackMetadata")
    listed = metadata.get("Item") if isinstance(metadata, dict) else None
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict) and "Name" in item:
            items[str(item["Name"])] = item.get("Value")
    amount = None
    if items.get("Amount") is not None:
        try:
            amount = Decimal(str(items["Amount"]))
        except InvalidOperation:
            raise BadCallback("Amount is not a number") from None
        if not amount.is_finite() or not 0 <= amount < MAX_AMOUNT or amount != round(amount, 2):
            raise BadCallback("Amount is not a payable sum")
    phone = None
    if items.get("PhoneNumber") is not None:
        try:
            phone = phones.normalise(str(items["PhoneNumber"]))
        except phones.InvalidPhone:  # the payment keeps the raw callback, where it can be read
            log.warning("mpesa callback %s: PhoneNumber is not a phone number", checkout)
    return Callback(
        merchant_request_id=_text(stk.get("MerchantRequestID"), 100) or None,
        checkout_request_id=checkout,
        result_code=code,
        result_desc=_text(stk.get("ResultDesc"), 300),
        amount=amount,
        receipt_number=_text(items.get("MpesaReceiptNumber"), 30) or None,
        transaction_date=_text(items.get("TransactionDate"), 20) or None,
        phone=phone,
    )


def _text(value: Any, limit: int) -> str:
    """A callback field as text that fits its column: no NUL (PostgreSQL refuses it), cut at `limit`."""
    return "" if value is None else str(value).replace("\x00", "")[:limit]


# -- tokens ----------------------------------------------------------------------------
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_for(tenant_id: str) -> str:
    """The tenant's callback token, made on first use (caller commits)."""
    row = db.session.get(MpesaToken, tenant_id)
    if row is not None:
        return crypto.decrypt(row.token_encrypted)
    token = secrets.token_urlsafe(32)
    db.session.add(MpesaToken(tenant_id=tenant_id, token_sha256=_digest(token), token_encrypted=crypto.encrypt(token)))
    return token


#: Tokens recently matched in this process: digest -> (tenant, when). Tokens never change.
_known: dict[str, tuple[str, float]] = {}
KNOWN_SECONDS = 300.0


def tenant_for(token: str) -> str | None:
    """The tenant whose token this is (found by digest, then compared in constant time)."""
    if not token or len(token) > 200:
        return None
    digest = _digest(token)
    known = _known.get(digest)
    if known is not None and time.monotonic() - known[1] < KNOWN_SECONDS:
        return known[0]
    row = db.session.scalar(select(MpesaToken).where(MpesaToken.token_sha256 == digest))
    if row is None or not hmac.compare_digest(crypto.decrypt(row.token_encrypted), token):
        return None
    _known[digest] = (row.tenant_id, time.monotonic())
    return row.tenant_id


# -- who may call ------------------------------------------------------------------------
def client_address(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """The caller's address: X-Forwarded-For is believed only from TRUSTED_PROXIES (its
    right-most address not itself a trusted proxy)."""
    trusted = [ipaddress.ip_network(n, strict=False) for n in current_app.config["TRUSTED_PROXIES"]]

    def is_trusted(address: str | None) -> bool:
        try:
            return address is not None and any(ipaddress.ip_address(address) in n for n in trusted)
        except ValueError:
            return False

    if not forwarded_for or not is_trusted(remote_addr):
        return remote_addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop):
            return hop
    return remote_addr


def allowed(address: str | None) -> bool:
    """MPESA_ALLOWED_NETWORKS (empty: anyone with the token)."""
    networks = current_app.config["MPESA_ALLOWED_NETWORKS"]
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
