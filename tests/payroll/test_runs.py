"""The run as a whole, in a database of this module's own (so a full run sees only these employees):
batches, concurrent runs, resuming, re-runs, failures, dry runs, approval, holds, the schedule."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.models.jobs import Schedule
from ombaro.payroll import runs
from ombaro.payroll.calculation import Period
from ombaro.payroll.errors import NotHoldable, RunHasFailures, RunInProgress
from ombaro.payroll.records import hold, release
from ombaro.schedules import trigger_for
from tests.factories.payroll import add_structure, mark, new_employee
from tests.payroll.helpers import Driver, record_of

STAFF = 25
BATCH = 10  # three batches: 10, 10, 5


@pytest.fixture(scope="module")
def staff(private_engine: Engine) -> list[uuid.UUID]:
    people = []
    for n in range(STAFF):
        employee = new_employee(private_engine, joining=dt.date(2025, 4, 1), gender="female" if n % 2 else "male")
        add_structure(private_engine, employee, dt.date(2025, 4, 1), basic=str(15000 + 1000 * n), hra="6000",
                      special="1500", pt_state="MH" if n % 3 else "KA", esi=n % 4 == 0)
        people.append(employee)
    return people


@pytest.fixture
def drive(private_engine: Engine, staff: list[uuid.UUID]) -> Driver:
    return Driver(private_engine, batch_size=BATCH)


def records(engine: Engine, year: int, month: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT * FROM salary_records WHERE year = :y AND month = :m ORDER BY employee_id"),
            {"y": year, "m": month}).mappings()]


def run_row(engine: Engine, year: int, month: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM payroll_runs WHERE year = :y AND month = :m"),
                                 {"y": year, "m": month}).mappings().one())


def counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                     for t in ("salary_records", "salary_record_details", "payroll_runs", "payroll_failures",
                               "attendance_records"))


def test_a_run_fans_out_in_batches_and_summarises_when_the_last_one_is_done(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    job = drive.submit({"year": 2026, "month": 1})
    assert drive.execute(job) == "succeeded"
    assert len(drive.queued) == 3
    assert run_row(private_engine, 2026, 1)["status"] == "computing"
    drive.drain()
    run = run_row(private_engine, 2026, 1)
    assert (run["status"], run["batches_done"], run["batches_total"], run["employees"]) == ("computed", 3, 3, STAFF)
    assert run["summary"]["records"]["pending"]["count"] == STAFF
    assert run["summary"]["failures"] == 0
    assert len(records(private_engine, 2026, 1)) == STAFF
    total = sum((r["net_salary"] for r in records(private_engine, 2026, 1)), D(0))
    assert D(run["summary"]["total_net"]) == total


def test_two_runs_of_one_month_at_once_make_one_record_per_employee(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    first, second = drive.submit({"year": 2026, "month": 2}), drive.submit({"year": 2026, "month": 2})
    drive.queued.clear()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run(job_id: uuid.UUID) -> None:
        barrier.wait()
        outcomes.append(drive.execute(job_id))

    threads = [threading.Thread(target=run, args=(j,)) for j in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["succeeded", "succeeded"]
    batches = list(drive.queued)
    assert len(batches) == 6  # each run fanned out its own three
    drive.queued.clear()

    # Both generations' batches at once, two at a time, interleaved.
    def work(jobs: list[uuid.UUID]) -> None:
        for job_id in jobs:
            drive.execute(job_id)

    workers = [threading.Thread(target=work, args=(batches[i::2],)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rows = records(private_engine, 2026, 2)
    assert len(rows) == STAFF
    assert len({r["employee_id"] for r in rows}) == STAFF
    run = run_row(private_engine, 2026, 2)
    assert run["generation"] == 2 and run["status"] == "computed"


def test_a_run_killed_midway_resumes_and_ends_as_a_whole_run_would(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    job = drive.submit({"year": 2026, "month": 3})
    drive.execute(job)
    batches = list(drive.queued)
    drive.queued.clear()
    assert drive.execute(batches[0]) == "succeeded"
    # The worker dies here: the rest of the batches are still queued jobs, nothing half-written.
    assert len(records(private_engine, 2026, 3)) == BATCH
    assert run_row(private_engine, 2026, 3)["status"] == "computing"
    for batch in batches[1:]:  # the relay hands them over again; a worker runs them
        assert drive.execute(batch) == "succeeded"
    assert drive.execute(batches[0]) == "skipped"  # a redelivered message does nothing
    assert len(records(private_engine, 2026, 3)) == STAFF
    assert run_row(private_engine, 2026, 3)["status"] == "computed"


def test_rerun_changes_nothing_and_never_touches_processed_records(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    drive.run(2026, 4)
    before = records(private_engine, 2026, 4)
    drive.run(2026, 4)
    assert records(private_engine, 2026, 4) == before  # figures and updated_at alike
    assert run_row(private_engine, 2026, 4)["employees"] == STAFF  # counted per generation, not summed

    run_id = run_row(private_engine, 2026, 4)["id"]
    with Session(private_engine) as session, session.begin():
        outcome = runs.approve(session, run_id, approver=None)
    assert outcome["processed"] == STAFF
    approved = records(private_engine, 2026, 4)
    add_structure(private_engine, staff[0], dt.date(2026, 4, 10), basic="90000")  # a late change to April
    drive.run(2026, 4)
    after = records(private_engine, 2026, 4)
    assert [r["status"] for r in after] == ["processed"] * STAFF
    assert after == approved


def test_one_employees_failure_is_recorded_and_does_not_fail_the_run(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    # No compensation yet; leaves at the month's end so that later months' tests count only the staff.
    newcomer = new_employee(private_engine, joining=dt.date(2026, 5, 4), last_day=dt.date(2026, 5, 31))
    job = drive.run(2026, 5)
    assert job["status"] == "succeeded"
    run = run_row(private_engine, 2026, 5)
    assert run["status"] == "computed" and run["summary"]["failures"] == 1
    assert run["preflight"]["counts"]["no_compensation"] == 1
    with private_engine.connect() as conn:
        failure = conn.execute(text("SELECT * FROM payroll_failures WHERE run_id = :r"),
                               {"r": run["id"]}).mappings().one()
    assert failure["employee_id"] == newcomer and failure["error_type"] == "NoCompensation"
    assert len(records(private_engine, 2026, 5)) == STAFF

    with Session(private_engine) as session, session.begin(), pytest.raises(RunHasFailures):
        runs.approve(session, run["id"], approver=None)

    add_structure(private_engine, newcomer, dt.date(2026, 5, 4), basic="31000")
    drive.run(2026, 5, employee_ids=[newcomer])  # re-run alone
    fixed = record_of(private_engine, newcomer, 2026, 5)
    assert fixed is not None and fixed["basic_salary"] == D("28000.00")  # 4th-31st: 28 of 31 days
    run = run_row(private_engine, 2026, 5)
    assert run["summary"]["failures"] == 0 and run["summary"]["records"]["pending"]["count"] == STAFF + 1
    with Session(private_engine) as session, session.begin():
        assert runs.approve(session, run["id"], approver=None)["processed"] == STAFF + 1


def test_dry_run_writes_nothing_and_compares_with_last_month(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    drive.run(2026, 6)
    mark(private_engine, staff[1], dt.date(2026, 7, 6), "absent")
    before = counts(private_engine)
    job = drive.run(2026, 7, dry_run=True)
    assert counts(private_engine) == before
    result = job["result"]
    assert result["dry_run"] is True and result["employees"] == STAFF
    changes = {c["employee_id"]: c for c in result["changes"]}
    absent = changes[str(staff[1])]
    assert D(absent["net_change"]) < 0 and absent["paid_days"] == "30.00"
    steady = changes[str(staff[2])]
    assert D(steady["net_change"]) == D(0) and steady["last_month_net"] == steady["net"]
    assert D(result["totals"]["gross"]) - D(result["totals"]["deductions"]) == D(result["totals"]["net"])


def test_run_cannot_be_approved_while_computing_and_holds_stay_out(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    job = drive.submit({"year": 2026, "month": 8})
    drive.execute(job)
    run_id = run_row(private_engine, 2026, 8)["id"]
    with Session(private_engine) as session, session.begin(), pytest.raises(RunInProgress):
        runs.approve(session, run_id, approver=None)
    drive.drain()
    held_id = record_of(private_engine, staff[0], 2026, 8)["id"]  # type: ignore[index]
    with Session(private_engine) as session, session.begin():
        assert hold(session, held_id, "bank account under verification").status == "hold"
    with Session(private_engine) as session, session.begin():
        assert runs.approve(session, run_id, approver=None)["processed"] == STAFF - 1
    drive.run(2026, 8)  # a re-run leaves the held record alone
    assert record_of(private_engine, staff[0], 2026, 8)["status"] == "hold"  # type: ignore[index]
    with Session(private_engine) as session, session.begin():
        assert release(session, held_id).status == "pending"
        with pytest.raises(NotHoldable):
            release(session, held_id)


def test_preflight_lists_unmarked_days_pending_leave_and_missing_compensation(
        private_engine: Engine, drive: Driver, staff: list[uuid.UUID]) -> None:
    from ombaro.payroll.preflight import preflight

    with private_engine.begin() as conn:
        conn.execute(text("INSERT INTO leave_requests (employee_id, leave_type, from_date, to_date, reason) "
                          "VALUES (:e, 'casual', '2026-09-10', '2026-09-11', 'wedding')"), {"e": staff[3]})
    for day in range(1, 31):
        if dt.date(2026, 9, day).weekday() != 6:
            mark(private_engine, staff[4], dt.date(2026, 9, day), "present", "8")
    with Session(private_engine) as session:
        checks = preflight(session, Period(2026, 9), as_of=dt.date(2026, 9, 30))
    assert checks["counts"]["pending_leave"] == 1
    assert checks["issues"]["pending_leave"][0]["employee_id"] == str(staff[3])
    unmarked = {i["employee_id"]: i for i in checks["issues"]["unmarked_days"]}
    assert str(staff[4]) not in unmarked
    # September 2026: 30 days less 4 Sundays = 26 working days, none a holiday.
    assert unmarked[str(staff[5])]["days"] == 26
    assert checks["ok"] is False


def test_the_monthly_schedule_fires_on_the_last_day_at_eight_pm_for_that_month(private_engine: Engine) -> None:
    with Session(private_engine) as session:
        schedule = session.query(Schedule).filter_by(name="payroll.monthly-run").one()
    assert (schedule.kind, schedule.cron, schedule.timezone) == ("payroll.run", "0 20 last * *", "Asia/Kolkata")
    trigger = trigger_for(schedule)
    fired = trigger.get_next_fire_time(None, dt.datetime(2028, 2, 1, tzinfo=dt.UTC))
    assert fired.isoformat() == "2028-02-29T20:00:00+05:30"
    assert runs.period_from_params({}, fired, "Asia/Kolkata") == Period(2028, 2)
    # A firing caught up after downtime still pays the month it was due for.
    assert runs.period_from_params({}, dt.datetime(2026, 11, 30, 14, 30, tzinfo=dt.UTC), "Asia/Kolkata") \
        == Period(2026, 11)


@pytest.fixture
def fresh_month_employee(private_engine: Engine) -> Iterator[uuid.UUID]:
    yield new_employee(private_engine, joining=dt.date(2026, 10, 1), last_day=dt.date(2026, 10, 31))


def test_deductions_beyond_gross_fail_that_employee_only(
        private_engine: Engine, drive: Driver, fresh_month_employee: uuid.UUID) -> None:
    add_structure(private_engine, fresh_month_employee, dt.date(2026, 10, 1), basic="10000", esi=False)
    with private_engine.begin() as conn:
        conn.execute(text("INSERT INTO payroll_adjustments (employee_id, year, month, kind, amount) "
                          "VALUES (:e, 2026, 10, 'salary_advance', 50000)"), {"e": fresh_month_employee})
    drive.run(2026, 10, employee_ids=[fresh_month_employee])
    assert record_of(private_engine, fresh_month_employee, 2026, 10) is None
    with private_engine.connect() as conn:
        reason = conn.execute(text("SELECT error_type FROM payroll_failures WHERE employee_id = :e"),
                              {"e": fresh_month_employee}).scalar_one()
    assert reason == "NegativeNet"
