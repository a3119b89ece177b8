"""Payroll's commands (routed to the bulk queue by their `payroll.` prefix): the monthly run, which
fans out, and one batch of it (docs/payroll.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from ombaro.models.jobs import Job
from ombaro.payroll import runs
from workers.app import celery, enqueue
from workers.tasks import run


@celery.task(name=runs.RUN_KIND)
def payroll_run(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return runs.start_run(session, job.params, job_id=job.id, requested_by=job.requested_by,
                              scheduled_for=job.scheduled_for, zone=load_settings().timezone, enqueue=enqueue,
                              progress=progress)

    return run(job_id, handler)


@celery.task(name=runs.BATCH_KIND)
def payroll_compute_batch(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        return runs.run_batch(session, job.params, progress=progress)

    return run(job_id, handler)
