"""Keyset pagination on (created_at, id), newest first: no OFFSET, no full scans. Shared by
every list the API and the admin pages show."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_

from app.extensions import db


class BadCursor(ValueError):
    pass


@dataclass
class Page:
    items: Sequence[Any]
    next_cursor: str | None


def encode_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        when = datetime.fromisoformat(created)
    except (ValueError, binascii.Error, UnicodeDecodeError) as err:
        raise BadCursor("Invalid cursor.") from err
    if when.tzinfo is None or "\x00" in row_id:  # written with their UTC offset, and ids have no NUL: forged
        raise BadCursor("Invalid cursor.")
    return when, row_id


def newest_first(query: Any, model: Any, *, cursor: str | None, limit: int) -> Page:
    """One page of `query` (a select of `model`) ordered by (created_at, id) descending."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < row_id)))
    rows = db.session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1]) if has_more and rows else None)
