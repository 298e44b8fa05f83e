"""Long-wait alerts: one row per queue while its episode lasts (the primary key makes the
alert once per episode, whichever scheduler process sees it first)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model, UTCDateTime, utcnow


class QueueAlert(Model):
    __tablename__ = "queue_alerts"

    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The oldest waiting job's due time when the alert was raised.
    oldest_waiting_at: Mapped[datetime] = mapped_column(UTCDateTime())
    threshold_seconds: Mapped[int] = mapped_column(Integer)
    #: When the operators' mail was accepted by the relay; None until then (retried each check).
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
