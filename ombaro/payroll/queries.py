"""What the payroll API reads: runs with their failures, the salary records a run's documents cover,
and one payslip's record. Read in the caller's session: row-level security decides whose rows exist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import PayrollFailure, PayrollRun, SalaryRecordDetail
from ombaro.payroll.errors import PayrollNotFound
from ombaro.payroll.runs import get_run

FAILURES_SHOWN = 500  # with a run; all of them are in the summary CSV
PAYSLIP_STATUSES = ("processed", "paid", "hold")  # approved by HR: the employee may see the payslip


def latest_runs(session: Session, limit: int) -> Sequence[PayrollRun]:
    """The latest months' runs, newest month first."""
    return session.scalars(select(PayrollRun).order_by(PayrollRun.year.desc(), PayrollRun.month.desc())
                           .limit(limit)).all()


def run_with_failures(session: Session, run_id: uuid.UUID) -> dict[str, Any]:
    """A run's columns and its first failures by employee code (RunNotFound if the caller sees no such run)."""
    run = get_run(session, run_id)
    failures = session.scalars(select(PayrollFailure).where(PayrollFailure.run_id == run_id)
                               .order_by(PayrollFailure.employee_code).limit(FAILURES_SHOWN)).all()
    return {**{c.key: getattr(run, c.key) for c in PayrollRun.__table__.columns}, "failures": failures}


def run_record_ids(session: Session, run_id: uuid.UUID, status: str) -> list[uuid.UUID]:
    """The ids of the run's month's salary records in `status` that the caller's policies show."""
    run = get_run(session, run_id)
    return list(session.scalars(select(SalaryRecord.id).where(
        SalaryRecord.year == run.year, SalaryRecord.month == run.month, SalaryRecord.status == status)))


def own_payslip(session: Session, employee_id: uuid.UUID, year: int,
                month: int) -> tuple[SalaryRecord, SalaryRecordDetail | None]:
    """The employee's approved record of the month with its line details (PayrollNotFound if none)."""
    return _payslip(session, SalaryRecord.employee_id == employee_id, SalaryRecord.year == year,
                    SalaryRecord.month == month, SalaryRecord.status.in_(PAYSLIP_STATUSES),
                    missing=f"no approved payslip of yours for {year}-{month:02d}")


def record_payslip(session: Session, record_id: uuid.UUID) -> tuple[SalaryRecord, SalaryRecordDetail | None]:
    """One salary record with its line details, in whatever state (PayrollNotFound if not visible)."""
    return _payslip(session, SalaryRecord.id == record_id, missing=f"no salary record {record_id}")


def _payslip(session: Session, *where: ColumnElement[bool],
             missing: str) -> tuple[SalaryRecord, SalaryRecordDetail | None]:
    found = session.execute(
        select(SalaryRecord, SalaryRecordDetail)
        .outerjoin(SalaryRecordDetail, SalaryRecordDetail.salary_record_id == SalaryRecord.id)
        .where(*where)).one_or_none()
    if found is None:
        raise PayrollNotFound(missing)
    return found[0], found[1]
