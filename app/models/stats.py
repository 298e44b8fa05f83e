"""Job throughput history: succeeded/failed counts per minute, hour and day.

Counted in Redis on the hot path (services/stats.py) and rolled up here by the scheduler, so
the dashboard's history survives restarts of Redis and of every process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model, UTCDateTime

GRANULARITIES = ("minute", "hour", "day")


class JobStat(Model):
    __tablename__ = "job_stats"

    granularity: Mapped[str] = mapped_column(String(6), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
