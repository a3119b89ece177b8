"""A batch's ids reach the server as one array literal in every statement of its load, never as a
list psycopg dumps element by element; the statements still select exactly the batch's employees."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ombaro.models.hr import Employee
from ombaro.payroll import runs
from ombaro.payroll.calculation import Period
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, mark, new_employee

MARCH = Period(2026, 3)


def test_a_batch_load_sends_its_ids_as_one_text_parameter_and_loads_exactly_them(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [new_employee(engine, joining=dt.date(2025, 1, 1)) for _ in range(3)]
    outside = new_employee(engine, joining=dt.date(2025, 1, 1))
    for employee in [*batch, outside]:
        add_structure(engine, employee, dt.date(2025, 1, 1), basic="30000")
        mark(engine, employee, dt.date(2026, 3, 3), "present", "9.00")
    parameters: list[Any] = []
    execute = psycopg.Cursor.execute

    def recorded(self: psycopg.Cursor[Any], query: Any, params: Any = None, *args: Any,
                 **kwargs: Any) -> psycopg.Cursor[Any]:
        parameters.extend((params or {}).values() if isinstance(params, dict) else params or ())
        return execute(self, query, params, *args, **kwargs)

    with Session(engine) as session, session.begin():
        book = RateBook.load(session)
        session.connection()
        monkeypatch.setattr(psycopg.Cursor, "execute", recorded)
        loaded = runs.load_batch(session, MARCH, batch, book)
        monkeypatch.undo()
    assert sorted(e.employee_id for e in loaded.employees) == sorted(batch)
    assert not [p for p in parameters if isinstance(p, list | tuple)], parameters
    assert any(isinstance(p, str) and all(str(e) in p for e in batch) for p in parameters)


def test_the_id_filter_selects_exactly_the_given_ids_and_none_for_none(engine: Engine) -> None:
    chosen = [new_employee(engine, joining=dt.date(2025, 1, 1)) for _ in range(2)]
    new_employee(engine, joining=dt.date(2025, 1, 1))
    with Session(engine) as session:
        def selected(ids: list[uuid.UUID]) -> set[uuid.UUID]:
            return set(session.scalars(select(Employee.id).where(Employee.id == runs._ids(ids))))

        assert selected(chosen) == set(chosen)
        assert selected(iter(chosen[:1])) == {chosen[0]}  # any iterable, read once
        assert selected([]) == set()
