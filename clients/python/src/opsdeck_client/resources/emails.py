"""client.emails: queue one mail or many, read and list them."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from opsdeck_client.client import segment
from opsdeck_client.pagination import Pager
from opsdeck_client.resources.base import Resource, fields
from opsdeck_client.types import Email, EmailSpec

#: The most mails one request may queue.
MAX_PER_REQUEST = 1000


class Emails(Resource):
    def send(
        self,
        to: str,
        *,
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        template: str | None = None,
        context: Mapping[str, Any] | None = None,
        digest_key: str | None = None,
        critical: bool | None = None,
        send_after: datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Email:
        """Queue one mail: a `template` (with `context`), or a `subject` and a `text`.
        Mails with one `digest_key` to one address are coalesced into a digest."""
        body = fields(
            to=to,
            subject=subject,
            text=text,
            html=html,
            template=template,
            context=dict(context) if context is not None else None,
            digest_key=digest_key,
            critical=critical,
            send_after=send_after,
            headers=dict(headers) if headers is not None else None,
        )
        return cast(Email, self._json("POST", "/emails", body, idempotency_key=idempotency_key))

    def send_many(self, mails: builtins.list[EmailSpec], *, idempotency_key: str | None = None) -> builtins.list[Email]:
        """Queue up to 1,000 mails in one request (all or none: any invalid one is a 422)."""
        if not 1 <= len(mails) <= MAX_PER_REQUEST:
            raise ValueError(f"send 1 to {MAX_PER_REQUEST} mails a call")
        answer = self._json("POST", "/emails", mails, idempotency_key=idempotency_key)
        return cast(builtins.list[Email], answer["data"])

    def get(self, email_id: str) -> Email:
        return cast(Email, self._json("GET", f"/emails/{segment(email_id)}"))

    def list(self, *, status: str | None = None, to: str | None = None, page_size: int | None = None) -> Pager[Email]:
        return self._pager("/emails", page_size, status=status, to=to)
