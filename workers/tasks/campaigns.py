"""Tasks of campaigns and booking notifications (bulk queue): each adapts its job to one domain call."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy.orm import Session

from ombaro import commands, notifications
from ombaro.campaigns import reconcile, sending
from ombaro.config import load_settings
from ombaro.db import get_engine
from ombaro.messaging import Runtime, TokenBucket
from ombaro.models.jobs import Job
from ombaro.providers.channels import configured_channels
from workers.app import celery, enqueue
from workers.tasks import run


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Built on first use in the worker process (after Celery's fork), then kept."""
    settings = load_settings()
    engine = get_engine()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return Runtime(engine=engine, settings=settings, channels=configured_channels(settings.messaging, engine),
                   bucket=TokenBucket(client, settings.messaging.provider_rates), enqueue=enqueue)


@celery.task(name="campaigns.start")
def start_campaign(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return sending.start(session, runtime(), job, progress)

    return run(job_id, handler)


@celery.task(name="campaigns.send_chunk")
def send_chunk(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return sending.send_chunk(session, runtime(), job, progress)

    outcome = run(job_id, handler)
    if outcome == "succeeded":
        sending.finish_after_chunk(runtime(), uuid.UUID(job_id))
    return outcome


@celery.task(name="campaigns.start_due")
def start_due(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return sending.start_due(session, runtime(), job, progress)

    return run(job_id, handler)


@celery.task(name="campaigns.reconcile")
def reconcile_deliveries(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        rt = runtime()

        def submit_chunk(kind: str, params: dict[str, Any], scope: str) -> None:
            commands.submit(session, kind, params, enqueue=rt.enqueue, scope=scope,
                            key=f"reconcile:{job.id}:{params['campaign_id']}", requested_by=job.requested_by)

        return reconcile.reconcile(rt, submit_chunk=submit_chunk)

    return run(job_id, handler)


@celery.task(name="notifications.dispatch")
def dispatch_notifications(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return notifications.dispatch(session, runtime(), job, progress)

    return run(job_id, handler)


@celery.task(name="notifications.reminders")
def booking_reminders(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return notifications.scan_reminders(session, runtime(), job, progress)

    return run(job_id, handler)
