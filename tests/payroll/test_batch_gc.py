"""A batch computes and writes with Python's cyclic garbage collector off (runs.no_cyclic_gc: its
objects are freed by reference counting, and the collector's passes over them only walked the
worker's heap), and the collector is back as it was afterwards, whatever happens in the batch."""

from __future__ import annotations

import datetime as dt
import gc
import uuid
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro.payroll import runs
from ombaro.payroll.calculation import Period
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, record_of


@pytest.fixture
def employee(engine: Engine) -> uuid.UUID:
    person = new_employee(engine, joining=dt.date(2025, 4, 1))
    add_structure(engine, person, dt.date(2025, 4, 1), basic="25000", hra="10000")
    return person


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_batch_computes_and_writes_with_the_collector_off_and_turns_it_back_on(
        engine: Engine, driver: Driver, employee: uuid.UUID, collector_on: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    compute, write = runs.compute_employees, runs.write_batch

    def computing(session: Session, period: Period, ids: Sequence[uuid.UUID], book: RateBook) -> runs.BatchOutcome:
        seen.append(("compute", gc.isenabled()))
        return compute(session, period, ids, book)

    def writing(*args: object, **kwargs: object) -> dict[str, int]:
        seen.append(("write", gc.isenabled()))
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "compute_employees", computing)
    monkeypatch.setattr(runs, "write_batch", writing)
    job = driver.run(2026, 5, employee_ids=[employee])
    assert job["status"] == "succeeded"
    assert seen == [("compute", False), ("write", False)]
    assert gc.isenabled()
    record = record_of(engine, employee, 2026, 5)
    assert record is not None and record["status"] == "pending"


def test_the_collector_comes_back_when_a_batch_fails(
        driver: Driver, employee: uuid.UUID, collector_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> runs.BatchOutcome:
        assert not gc.isenabled()
        raise RuntimeError("the batch breaks")

    monkeypatch.setattr(runs, "compute_employees", failing)
    job = driver.submit({"year": 2026, "month": 5, "employee_ids": [str(employee)]})
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
