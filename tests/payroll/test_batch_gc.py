"""A batch computes and writes with Python's cyclic garbage collector off (runs.no_cyclic_gc: its
objects are freed by reference counting, and the collector's passes over them only walked the
worker's heap), and the collector is back as it was afterwards, whatever happens in the batch."""

from __future__ import annotations

import datetime as dt
import gc
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ombaro.payroll import runs
from ombaro.payroll.calculation import EmployeeMonth, Payslip, Period
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, record_of


@pytest.fixture
def employees(engine: Engine) -> list[uuid.UUID]:
    people = []
    for basic in ("25000", "26000"):
        person = new_employee(engine, joining=dt.date(2025, 4, 1))
        add_structure(engine, person, dt.date(2025, 4, 1), basic=basic, hra="10000")
        people.append(person)
    return people


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


# Restated in session 10: a batch no longer computes everyone, then writes everyone; it computes a
# chunk of runs.WRITE_CHUNK employees and sends its upsert while it computes the next. The intent is
# the same: every computation and every write of the batch with the collector off, on again after.
def test_a_batch_computes_and_writes_with_the_collector_off_and_turns_it_back_on(
        engine: Engine, driver: Driver, employees: list[uuid.UUID], collector_on: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    compute, execute, rest = runs.compute_or_reason, psycopg.Cursor.execute, runs._write_rest

    def computing(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip | tuple[str, str]:
        seen.append(("compute", gc.isenabled()))
        return compute(employee, period, book)

    def executing(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> psycopg.Cursor[Any]:
        if query is runs.UPSERT:
            seen.append(("write", gc.isenabled()))
        return execute(self, query, *args, **kwargs)

    def writing_the_rest(*args: Any, **kwargs: Any) -> dict[str, int]:
        seen.append(("write the rest", gc.isenabled()))
        return rest(*args, **kwargs)

    monkeypatch.setattr(runs, "WRITE_CHUNK", 1)
    monkeypatch.setattr(runs, "compute_or_reason", computing)
    monkeypatch.setattr(psycopg.Cursor, "execute", executing)
    monkeypatch.setattr(runs, "_write_rest", writing_the_rest)
    job = driver.run(2026, 5, employee_ids=employees)
    assert job["status"] == "succeeded"
    assert seen == [("compute", False), ("write", False), ("compute", False), ("write", False),
                    ("write the rest", False)]
    assert gc.isenabled()
    for employee in employees:
        record = record_of(engine, employee, 2026, 5)
        assert record is not None and record["status"] == "pending"


def test_the_collector_comes_back_when_a_batch_fails(
        driver: Driver, employees: list[uuid.UUID], collector_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> Payslip:
        assert not gc.isenabled()
        raise RuntimeError("the batch breaks")

    monkeypatch.setattr(runs, "compute_or_reason", failing)
    job = driver.submit({"year": 2026, "month": 5, "employee_ids": [str(e) for e in employees]})
    driver.execute(job)
    assert len(driver.queued) == 1
    assert driver.execute(driver.queued.pop()) != "succeeded"
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off(collector_on: None) -> None:
    gc.disable()
    with runs.no_cyclic_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()
    gc.enable()
    with pytest.raises(ValueError), runs.no_cyclic_gc():
        raise ValueError
    assert gc.isenabled()
