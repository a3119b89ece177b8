"""Payroll commands driven through the real command path (commands.execute: claim, worker role under
row-level security, fenced success) without a broker, batches run as the relay would hand them
over; and a salary record as the tests read it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from ombaro.models.jobs import Job
from ombaro.payroll import runs
from ombaro.payroll.commands import FINAL_SETTLEMENT_KIND

ZONE = "Asia/Kolkata"


def record_of(engine: Engine, employee_id: uuid.UUID, year: int, month: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT s.*, d.paid_days, d.lop_days, d.explanation, d.employer_contributions FROM salary_records AS s "
            "LEFT JOIN salary_record_details AS d ON d.salary_record_id = s.id "
            "WHERE s.employee_id = :e AND s.year = :y AND s.month = :m"),
            {"e": employee_id, "y": year, "m": month}).mappings().one_or_none()
    return dict(row) if row else None


@dataclass
class Driver:
    """Runs payroll commands the way workers would, one job at a time, in this process."""

    engine: Engine
    today: dt.date = dt.date(2026, 11, 26)
    batch_size: int = runs.BATCH_SIZE
    queued: list[uuid.UUID] = field(default_factory=list)

    def enqueue(self, job_id: uuid.UUID, kind: str) -> None:
        assert kind in (runs.RUN_KIND, runs.BATCH_KIND)
        self.queued.append(job_id)

    def submit(self, params: dict[str, Any], key: str | None = None) -> uuid.UUID:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            submitted = commands.submit(session, runs.RUN_KIND, params, enqueue=lambda *_: None, key=key,
                                        scope="payroll-tests")
        return submitted.job.id  # the caller executes it

    def handler(self, session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        if job.kind == runs.RUN_KIND:
            return runs.start_run(session, job.params, job_id=job.id, requested_by=job.requested_by,
                                  scheduled_for=job.scheduled_for, zone=ZONE, enqueue=self.enqueue,
                                  today=self.today, batch_size=self.batch_size, progress=progress)
        return runs.run_batch(session, job.params, progress=progress)

    def execute(self, job_id: uuid.UUID) -> str:
        return commands.execute(job_id, self.handler, engine=self.engine, lease_seconds=60)

    def drain(self) -> None:
        while self.queued:
            self.execute(self.queued.pop(0))

    def run(self, year: int, month: int, *, employee_ids: list[uuid.UUID] | None = None,
            dry_run: bool = False) -> dict[str, Any]:
        """Submit, run the run job and every batch it fans out; the run job's row."""
        params: dict[str, Any] = {"year": year, "month": month, "dry_run": dry_run}
        if employee_ids is not None:
            params["employee_ids"] = [str(e) for e in employee_ids]
        job_id = self.submit(params)
        self.execute(job_id)
        self.drain()
        with self.engine.connect() as conn:
            return dict(conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).mappings().one())


def run_final_settlement(engine: Engine, params: dict[str, object],
                         requested_by: uuid.UUID | None = None) -> dict[str, Any]:
    """Submit and execute `payroll.final_settlement` through the command path; the job's outcome."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        job = commands.submit(session, FINAL_SETTLEMENT_KIND, params, enqueue=lambda *_: None,
                              scope="payroll-tests", requested_by=requested_by).job
    env = commands.Environment(settings=load_settings(), engine=engine, enqueue=lambda *_: None)
    status = commands.execute(job.id, commands.command_of(FINAL_SETTLEMENT_KIND).run(env), engine=engine,
                              lease_seconds=60)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, result, error FROM jobs WHERE id = :id"), {"id": job.id}).one()
    assert status == row.status
    return {"status": row.status, "result": row.result, "error": row.error}
