"""kill -9 of a worker inside a payroll batch (held at its first write by a lock this test session
holds), under the default settings: the batch resumes on another worker within a minute and the run
ends with one salary record per employee. Lost = 0, doubled = 0."""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.payroll import runs
from tests.chaos.helpers import defaults, measure, only_schedules, start_beat
from tests.factories.payroll import add_structure, new_employee
from tests.helpers import wait_until
from tests.services import Database, Process, start_worker
from workers.app import enqueuer

pytestmark = [pytest.mark.chaos, pytest.mark.db]

STAFF = 25


def test_worker_killed_inside_a_payroll_batch_resumes_within_a_minute(
        spawn: Callable[..., Process], broker_url: str, service_env: dict[str, str],
        own_database: Callable[[], Database]) -> None:
    db = own_database()
    staff = []
    for n in range(STAFF):
        employee = new_employee(db.engine, joining=dt.date(2025, 4, 1))
        add_structure(db.engine, employee, dt.date(2025, 4, 1), basic=str(15000 + 1000 * n), hra="6000",
                      pt_state="MH")
        staff.append(employee)
    only_schedules(db.engine)  # the scheduler here is the relay only
    env = defaults({**service_env, "DATABASE_URL": db.url})

    def batch() -> Any:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT status, attempts FROM jobs WHERE kind = :k"),
                                {"k": runs.BATCH_KIND}).one_or_none()

    def waiting_on_the_lock() -> bool:
        with db.engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'salary_records'::regclass"
            )).scalar_one())

    with db.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE salary_records IN SHARE ROW EXCLUSIVE MODE"))  # writes wait
        doomed = start_worker(spawn, "doomed", concurrency=1, env=env)
        start_beat(spawn, "beat", env).wait_for("scheduler leading")
        with Session(db.engine) as session, session.begin():
            commands.submit(session, runs.RUN_KIND, {"year": 2026, "month": 3}, enqueue=enqueuer(broker_url))
        wait_until(lambda: (b := batch()) is not None and b.status == "running" and waiting_on_the_lock(),
                   timeout=60, what="the batch to wait at its first write")
        start_worker(spawn, "rescuer", concurrency=1, env=env)
        doomed.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        blocker.rollback()  # the lock goes with the transaction

    wait_until(lambda: batch().attempts == 2, timeout=90, interval=0.5, what="the batch to be taken over")
    resumed = measure("payroll batch taken over after kill -9", time.monotonic() - killed_at)

    def computed() -> bool:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT status FROM payroll_runs")).scalar_one() == "computed"

    wait_until(computed, timeout=60, interval=0.5, what="the run to be computed")
    measure("payroll run computed after kill -9", time.monotonic() - killed_at)
    assert resumed < 60
    with db.engine.connect() as conn:
        per_employee = dict(conn.execute(text(
            "SELECT employee_id, count(*) FROM salary_records WHERE year = 2026 AND month = 3 GROUP BY 1")).all())
        failures = conn.execute(text("SELECT count(*) FROM payroll_failures")).scalar_one()
    assert per_employee == dict.fromkeys(staff, 1)  # lost = 0, doubled = 0
    assert failures == 0
