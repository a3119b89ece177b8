"""Preflight warns about arrears due (issue 15): a compensation change backdated into approved months is
listed with the employee and each month's difference before the run pays it, and no longer once a run
has recorded the arrears; a change that alters no figure is not listed."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import preflight, runs
from ombaro.payroll.calculation import Period
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver


def approve_month(driver: Driver, year: int, month: int, employee: uuid.UUID) -> None:
    driver.run(year, month, employee_ids=[employee])
    with Session(driver.engine) as session, session.begin():
        run_id = session.scalar(text("SELECT id FROM payroll_runs WHERE year = :y AND month = :m"),
                                {"y": year, "m": month})
        runs.approve(session, run_id, approver=None, allow_failures=True)


def arrears_listed(engine: Engine, employee: uuid.UUID, period: Period) -> tuple[int, dict[str, Any] | None]:
    with Session(engine) as session:
        checks = preflight.preflight(session, period, as_of=period.end)
    mine = [e for e in checks["issues"]["arrears_due"] if e["employee_id"] == str(employee)]
    return checks["counts"]["arrears_due"], (mine[0] if mine else None)


def test_preflight_lists_backdated_arrears_before_the_run_pays_them(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2031, 1, 1))
    add_structure(engine, employee, dt.date(2031, 1, 1), basic="10000", hra="4000", special="1000")
    approve_month(driver, 2031, 4, employee)
    approve_month(driver, 2031, 5, employee)
    assert arrears_listed(engine, employee, Period(2031, 6))[1] is None  # nothing backdated yet

    # Entered in June, effective 16 April: basic 12,000, special 2,000.
    add_structure(engine, employee, dt.date(2031, 4, 16), basic="12000", hra="4000", special="2000")
    count, listed = arrears_listed(engine, employee, Period(2031, 6))
    assert count >= 1 and listed is not None
    # April (30 days): basic +2,000 x 15/30 = 1,000 and special +1,000 x 15/30 = 500; May: 2,000 + 1,000.
    assert listed["months"] == [{"month": "2031-04", "amount": "1500.00"}, {"month": "2031-05", "amount": "3000.00"}]

    approve_month(driver, 2031, 6, employee)  # June pays them
    assert arrears_listed(engine, employee, Period(2031, 7))[1] is None


def test_a_backdated_change_that_alters_no_figure_is_not_listed(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2032, 1, 1))
    add_structure(engine, employee, dt.date(2032, 1, 1), basic="20000")
    approve_month(driver, 2032, 4, employee)
    add_structure(engine, employee, dt.date(2032, 4, 10), basic="20000")  # the same pay, re-entered
    assert arrears_listed(engine, employee, Period(2032, 5))[1] is None
    with engine.begin() as conn:
        conn.execute(text("UPDATE compensation_structures SET basic = 26000 WHERE employee_id = :e "
                          "AND effective_from = '2032-04-10'"), {"e": employee})
    listed = arrears_listed(engine, employee, Period(2032, 5))[1]
    # 6,000 more a month from 10 April: 6,000 x 21/30 = 4,200.
    assert listed is not None and listed["months"] == [{"month": "2032-04", "amount": str(D("4200.00"))}]
