"""One thin task per command kind: claim the job, make one domain call, record the outcome.

The task name is the command kind. Each task only adapts the job's params to the domain call.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from ombaro import commands, diagnostics, reporting
from ombaro.config import load_settings
from ombaro.db import get_engine
from ombaro.models.jobs import Job
from workers.app import celery


def run(job_id: str, handler: commands.Handler) -> str:
    settings = load_settings()
    return commands.execute(uuid.UUID(job_id), handler, engine=get_engine(),
                            lease_seconds=settings.job_lease_seconds)


@celery.task(name="reports.refresh")
def refresh_reports(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return reporting.refresh_views(session, job.params.get("views"), zone=load_settings().timezone,
                                       job_id=job.id, progress=progress)

    return run(job_id, handler)


@celery.task(name="system.ping")
def ping(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return diagnostics.ping(session, job.params, progress=progress)

    return run(job_id, handler)
