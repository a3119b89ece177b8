"""Tasks of the spine: refreshing the reporting views, and the pipeline check `system.ping`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ombaro import commands, diagnostics, reporting
from ombaro.config import load_settings
from ombaro.models.jobs import Job
from workers.app import celery
from workers.tasks import run


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
