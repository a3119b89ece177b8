"""One thin task per command kind, one module per capability: claim the job, make one domain
call, record the outcome. The task name is the command kind; a task only adapts the job's params
to the domain call. workers/app.py includes every module of this package."""

from __future__ import annotations

import uuid

from celery.exceptions import Reject

from ombaro import commands
from ombaro.config import load_settings
from ombaro.db import get_engine


def run(job_id: str, handler: commands.Handler) -> str:
    settings = load_settings()
    try:
        return commands.execute(uuid.UUID(job_id), handler, engine=get_engine(),
                                lease_seconds=settings.job_lease_seconds,
                                heartbeat_seconds=settings.job_heartbeat_seconds)
    except commands.DatabaseUnavailable as exc:
        # Not acknowledged: the message goes back to the broker and is tried again, instead of its
        # job waiting for the relay's stale period.
        raise Reject(str(exc), requeue=True) from exc
