"""Payroll test helpers: employees, structures and attendance made with plain SQL, and the payroll
commands driven through the real command path (commands.execute: claim, worker role under row-level
security, fenced success) without a broker; batches are run as the relay would hand them over."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job
from ombaro.payroll import runs
from tests.conftest import migrate

ZONE = "Asia/Kolkata"


def new_employee(engine: Engine, *, joining: dt.date, last_day: dt.date | None = None, gender: str = "male",
                 name: str = "Test Employee", department: str = "operations") -> uuid.UUID:
    tag = secrets.token_hex(5)
    with engine.begin() as conn:
        user_id = conn.execute(text(
            "INSERT INTO auth.users (email, encrypted_password) VALUES (:email, 'x') RETURNING id"),
            {"email": f"payroll.{tag}@example.test"}).scalar_one()
        conn.execute(text(
            "INSERT INTO employees (id, employee_code, name, email, mobile, gender, department, designation, "
            "joining_date, last_working_date) VALUES (:id, :code, :name, :email, '+919800000000', :gender, :dept, "
            "'Executive', :joining, :last_day)"),
            {"id": user_id, "code": f"PT{tag.upper()}", "name": name, "email": f"payroll.{tag}@example.test",
             "gender": gender, "dept": department, "joining": joining, "last_day": last_day})
    return user_id


def add_structure(engine: Engine, employee_id: uuid.UUID, effective_from: dt.date, *, basic: str, hra: str = "0",
                  transport: str = "0", medical: str = "0", special: str = "0", other: str = "0",
                  pf: bool = True, esi: bool = True, pt_state: str | None = None, overtime: bool = True) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO compensation_structures (employee_id, effective_from, basic, hra, transport, medical, "
            "special, other, pf_applicable, esi_applicable, pt_state, overtime_eligible) VALUES (:e, :f, :basic, "
            ":hra, :transport, :medical, :special, :other, :pf, :esi, :pt, :ot)"),
            {"e": employee_id, "f": effective_from, "basic": Decimal(basic), "hra": Decimal(hra),
             "transport": Decimal(transport), "medical": Decimal(medical), "special": Decimal(special),
             "other": Decimal(other), "pf": pf, "esi": esi, "pt": pt_state, "ot": overtime})


def mark(engine: Engine, employee_id: uuid.UUID, day: dt.date, status: str, hours: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO attendance_records (employee_id, date, status, work_hours) VALUES (:e, :d, :s, :h) "
            "ON CONFLICT (employee_id, date) DO UPDATE SET status = EXCLUDED.status, work_hours = EXCLUDED.work_hours"),
            {"e": employee_id, "d": day, "s": status, "h": Decimal(hours) if hours else None})


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


@pytest.fixture
def driver(engine: Engine) -> Driver:
    return Driver(engine)


@pytest.fixture(scope="module")
def private_engine(make_database: Callable[[], str]) -> Iterator[Engine]:
    """A migrated database of this module's own: full runs there see only the employees it makes."""
    url = make_database()
    migrate(url)
    eng = create_engine(url, pool_size=10)
    yield eng
    eng.dispose()
