"""Dispatch tasks: one booking (`dispatch.booking`), or a vendor's or city's day at once
(`dispatch.batch`). Both run on the `dispatch` queue, never behind bulk work."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from ombaro.dispatch import service
from ombaro.models.jobs import Job
from workers.app import celery
from workers.tasks import run


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    # Short timeouts: a slow Redis must not hold a dispatch; positions fall back to the database.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


@celery.task(name="dispatch.booking")
def dispatch_booking(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        settings = load_settings()
        exclude = frozenset(uuid.UUID(t) for t in job.params.get("exclude_therapists", []))
        return service.dispatch_booking(session, uuid.UUID(job.params["booking_id"]), zone=settings.timezone,
                                        redis=redis_client(settings.redis_url), exclude=exclude, job_id=job.id)

    return run(job_id, handler)


@celery.task(name="dispatch.batch")
def dispatch_batch(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        settings = load_settings()
        vendor = job.params.get("vendor_id")
        return service.dispatch_batch(session, day=dt.date.fromisoformat(job.params["date"]), zone=settings.timezone,
                                      vendor_id=uuid.UUID(vendor) if vendor else None, city=job.params.get("city"),
                                      redis=redis_client(settings.redis_url), job_id=job.id, progress=progress)

    return run(job_id, handler)
