"""The hourly maintenance of live locations (`locations.prune`, maintenance queue)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from ombaro import commands, locations
from ombaro.config import load_settings
from ombaro.models.jobs import Job
from workers.app import celery
from workers.tasks import run
from workers.tasks.dispatch import redis_client


@celery.task(name="locations.prune")
def prune_locations(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        # Partition DDL is the owner's and DETACH CONCURRENTLY needs its own autocommit
        # connection; this transaction only records the outcome, so it holds no lock the DDL waits for.
        params = job.params
        hours = params.get("retention_hours")
        return locations.prune(
            session.get_bind(), job_id=job.id, progress=progress, redis=redis_client(load_settings().redis_url),
            retention=dt.timedelta(hours=float(hours)) if hours else locations.RETENTION,
            batch_rows=int(params.get("batch_rows", 50_000)), lock_timeout_ms=int(params.get("lock_timeout_ms", 2000)))

    return run(job_id, handler)
