"""A batch writes its records and their lines a chunk at a time (runs.WRITE_CHUNK employees a
statement), all chunks in one pipeline inside the batch's transaction: every record gets its lines
once, a re-run that changes nothing writes nothing, and a chunk that fails takes the whole batch
with it (the batch is all or nothing, and its job is retried as before)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from ombaro.payroll import runs
from ombaro.payroll.calculation import EmployeeMonth, Payslip, Period
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver

YEAR, MONTH = 2026, 5


@pytest.fixture
def five(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Five employees, written two a statement: three statements for their one batch."""
    monkeypatch.setattr(runs, "WRITE_CHUNK", 2)
    people = []
    for n in range(5):
        person = new_employee(engine, joining=dt.date(2025, 4, 1), name=f"Chunked {n}")
        add_structure(engine, person, dt.date(2025, 4, 1), basic=f"{20000 + 1000 * n}", hra="8000")
        people.append(person)
    return people


def _written(engine: Engine, people: list[uuid.UUID]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(text(
            "SELECT s.employee_id, s.status, s.net_salary, s.updated_at, d.employee_name, d.paid_days, "
            "d.days_in_month, d.run_id, d.explanation IS NOT NULL AS explained, r.id AS run "
            "FROM salary_records AS s LEFT JOIN salary_record_details AS d ON d.salary_record_id = s.id "
            "LEFT JOIN payroll_runs AS r ON r.year = s.year AND r.month = s.month "
            "WHERE s.employee_id = ANY(:ids) AND s.year = :y AND s.month = :m ORDER BY s.employee_id"),
            {"ids": people, "y": YEAR, "m": MONTH}).mappings()]


def _batch_results(engine: Engine, run_job: dict[str, Any]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT result FROM jobs WHERE kind = :kind AND params ->> 'run_id' = :run ORDER BY created_at"),
            {"kind": runs.BATCH_KIND, "run": run_job["result"]["run_id"]}).scalars())


def test_a_batch_written_in_chunks_writes_every_record_with_its_lines_once(
        engine: Engine, driver: Driver, five: list[uuid.UUID]) -> None:
    job = driver.run(YEAR, MONTH, employee_ids=five)
    assert job["status"] == "succeeded"
    rows = _written(engine, five)
    assert [r["employee_id"] for r in rows] == sorted(five, key=str)
    for row in rows:
        assert row["status"] == "pending" and row["net_salary"] > 0
        assert row["employee_name"].startswith("Chunked ") and row["explained"]
        assert row["paid_days"] == 31 and row["days_in_month"] == 31 and row["run_id"] == row["run"]
    assert _batch_results(engine, job)[-1]["changed"] == 5

    again = driver.run(YEAR, MONTH, employee_ids=five)
    assert again["status"] == "succeeded"
    assert _batch_results(engine, again)[-1]["changed"] == 0
    assert _written(engine, five) == rows  # nothing rewritten, not even updated_at


def test_a_chunk_that_fails_rolls_back_the_chunks_written_before_it(
        engine: Engine, driver: Driver, five: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> None:
    values = Payslip.record_values
    made: list[int] = []

    def fifth_unreadable(self: Payslip) -> dict[str, Any]:
        made.append(1)
        row = values(self)
        return {**row, "net_salary": "not a number"} if len(made) == 5 else row

    monkeypatch.setattr(Payslip, "record_values", fifth_unreadable)
    submitted = driver.submit({"year": YEAR, "month": MONTH, "employee_ids": [str(p) for p in five]})
    assert driver.execute(submitted) == "succeeded"
    assert len(driver.queued) == 1
    assert driver.execute(driver.queued.pop()) != "succeeded"
    assert len(made) == 5  # the first two chunks were built and sent before the third failed
    assert _written(engine, five) == []


# Session 10: a batch computes a chunk, sends its upsert, and computes the next while the server
# writes it (runs._computed_chunks, runs._upsert_records).
def test_each_chunk_is_sent_before_the_next_is_computed(
        engine: Engine, driver: Driver, five: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    compute, execute = runs.compute_or_reason, psycopg.Cursor.execute

    def computing(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip | tuple[str, str]:
        order.append("compute")
        return compute(employee, period, book)

    def executing(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> psycopg.Cursor[Any]:
        if query is runs.UPSERT:
            order.append("write")
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(runs, "compute_or_reason", computing)
    monkeypatch.setattr(psycopg.Cursor, "execute", executing)
    job = driver.run(YEAR, MONTH, employee_ids=five)
    assert job["status"] == "succeeded"
    assert order == ["compute", "compute", "write", "compute", "compute", "write", "compute", "write"]
    assert len(_written(engine, five)) == 5


def test_an_error_computing_a_middle_chunk_leaves_nothing_of_the_batch(
        engine: Engine, driver: Driver, five: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> None:
    compute, execute = runs.compute_or_reason, psycopg.Cursor.execute
    computed: list[int] = []
    sent: list[int] = []

    def third_breaks(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip | tuple[str, str]:
        computed.append(1)
        if len(computed) == 3:
            raise RuntimeError("a bug in the calculation")
        return compute(employee, period, book)

    def executing(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> psycopg.Cursor[Any]:
        if query is runs.UPSERT:
            sent.append(1)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(runs, "compute_or_reason", third_breaks)
    monkeypatch.setattr(psycopg.Cursor, "execute", executing)
    submitted = driver.submit({"year": YEAR, "month": MONTH, "employee_ids": [str(p) for p in five]})
    assert driver.execute(submitted) == "succeeded"
    assert driver.execute(driver.queued.pop()) != "succeeded"
    assert sent == [1]  # the first chunk was sent to the server before the second broke
    assert _written(engine, five) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payroll_failures WHERE employee_id = ANY(:ids)"),
                            {"ids": five}).scalar_one() == 0


def test_a_chunk_of_failures_only_sends_nothing_and_the_failure_is_recorded(
        engine: Engine, driver: Driver, five: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "WRITE_CHUNK", 1)
    unpaid = new_employee(engine, joining=dt.date(2025, 4, 1), name="No structure")  # fails: nothing to pay
    job = driver.run(YEAR, MONTH, employee_ids=[*five, unpaid])
    assert job["status"] == "succeeded"
    assert len(_written(engine, five)) == 5 and _written(engine, [unpaid]) == []
    result = _batch_results(engine, job)[-1]
    assert (result["computed"], result["changed"], result["failed"]) == (5, 5, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT employee_id FROM payroll_failures WHERE employee_id = ANY(:ids)"),
                            {"ids": [*five, unpaid]}).scalars().all() == [unpaid]
