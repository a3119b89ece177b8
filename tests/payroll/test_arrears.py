"""Arrears (issue 15): a compensation change backdated into approved months is paid, or recovered,
in the next run, once, per component and month; PF on the arrears of PF wages at each month's own
rates and ceiling, ESI on them as wages of the month paid, TDS on them in the month paid; a cut is
recovered within the Payment of Wages Act s.7(3) limit. Figures computed by hand beside each check;
the property computes the expected lines in integer paise, independently of the engine."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ombaro.payroll import runs
from ombaro.payroll.calculation import ApprovedMonth, EmployeeMonth, Period, Structure, compute
from ombaro.payroll.documents import payslip_pdf
from ombaro.payroll.rates import RateBook
from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import SalaryRecordDetail
from tests.payroll.conftest import Driver, add_structure, new_employee, record_of

COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other")


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


@pytest.fixture
def pay(private_engine: Engine) -> Driver:
    return Driver(private_engine)


def run_and_approve(driver: Driver, year: int, month: int, employee: uuid.UUID) -> dict[str, Any]:
    driver.run(year, month, employee_ids=[employee])
    with Session(driver.engine) as session, session.begin():
        run_id = session.scalar(text("SELECT id FROM payroll_runs WHERE year = :y AND month = :m"),
                                {"y": year, "m": month})
        runs.approve(session, run_id, approver=None)
    record = record_of(driver.engine, employee, year, month)
    assert record is not None and record["status"] == "processed"
    return record


def lines_of(engine: Engine, employee: uuid.UUID, year: int, month: int) -> list[tuple[str, str, D, Any]]:
    with engine.connect() as conn:
        return [(f"{r.for_year}-{r.for_month:02d}", r.component, r.amount, r.id) for r in conn.execute(text(
            "SELECT a.* FROM payroll_arrears AS a JOIN salary_records AS s ON s.id = a.salary_record_id "
            "WHERE s.employee_id = :e AND s.year = :y AND s.month = :m ORDER BY a.for_year, a.for_month, a.component"),
            {"e": employee, "y": year, "m": month})]


def amounts(lines: list[tuple[str, str, D, Any]]) -> list[tuple[str, str, D]]:
    return [(m, c, a) for m, c, a, _ in lines]


def line(record: dict[str, Any], group: str, key: str) -> D:
    return D(record[group][key])


def assert_adds_up(record: dict[str, Any]) -> None:
    gross = record["basic_salary"] + sum(D(v) for v in record["allowances"].values()) \
        + record["overtime_amount"] + record["bonus"]
    assert gross == record["gross_salary"]
    assert sum(D(v) for v in record["deductions"].values()) == record["total_deductions"]
    assert record["gross_salary"] - record["total_deductions"] == record["net_salary"]


def test_a_raise_backdated_two_months_is_paid_once_as_arrears(private_engine: Engine, pay: Driver) -> None:
    employee = new_employee(private_engine, joining=dt.date(2027, 1, 1))
    add_structure(private_engine, employee, dt.date(2027, 1, 1), basic="10000", hra="4000", special="1000")
    april = run_and_approve(pay, 2027, 4, employee)
    may = run_and_approve(pay, 2027, 5, employee)
    assert april["gross_salary"] == may["gross_salary"] == D("15000.00")
    assert line(april, "deductions", "pf") == D("1320.00")  # Code wage: 15,000 less HRA 4,000 = 11,000; 12%
    # The raise, entered in June, takes effect from 16 April: basic 12,000, special 2,000.
    add_structure(private_engine, employee, dt.date(2027, 4, 16), basic="12000", hra="4000", special="2000")

    pay.run(2027, 6, employee_ids=[employee])
    june = record_of(private_engine, employee, 2027, 6)
    assert june is not None
    assert june["basic_salary"] == D("12000.00") and line(june, "allowances", "special") == D("2000.00")
    # April (30 days): basic 10,000 x 15/30 + 12,000 x 15/30 = 11,000 (paid 10,000); special 1,500 (1,000).
    # May: 12,000 (10,000) and 2,000 (1,000). PF: April's wage 12,500 -> 1,500 (paid 1,320), May's 14,000 ->
    # 1,680; employer EPS 8.33% to the rupee: April 1,041 (916), May 1,166 (916); EPF the rest of 12%.
    assert amounts(lines_of(private_engine, employee, 2027, 6)) == [
        ("2027-04", "basic", D("1000.00")), ("2027-04", "pf", D("180.00")), ("2027-04", "pf_epf", D("55.00")),
        ("2027-04", "pf_eps", D("125.00")), ("2027-04", "special", D("500.00")),
        ("2027-05", "basic", D("2000.00")), ("2027-05", "pf", D("360.00")), ("2027-05", "pf_epf", D("110.00")),
        ("2027-05", "pf_eps", D("250.00")), ("2027-05", "special", D("1000.00"))]
    assert line(june, "allowances", "arrears") == D("4500.00")
    assert june["gross_salary"] == D("22500.00")  # 18,000 + 4,500
    assert line(june, "deductions", "pf") == D("1680.00")  # June's own: 14,000 x 12%
    assert line(june, "deductions", "pf_arrears") == D("540.00")
    # ESI: rate of wages 18,000 is covered; the arrears are wages of June: 0.75% of 22,500 = 168.75 -> 169.
    assert line(june, "deductions", "esi") == D("169.00")
    assert june["employer_contributions"]["pf_arrears_eps"] == "375.00"
    assert june["employer_contributions"]["pf_arrears_epf"] == "165.00"
    assert [a["month"] for a in june["explanation"]["arrears"]].count("2027-04") == 5
    assert june["net_salary"] == D("20111.00")  # 22,500 - 1,680 - 540 - 169
    assert_adds_up(june)

    # Re-running June computes the same: nothing is written again.
    before = lines_of(private_engine, employee, 2027, 6)
    pay.run(2027, 6, employee_ids=[employee])
    again = record_of(private_engine, employee, 2027, 6)
    assert again is not None and again["updated_at"] == june["updated_at"]
    assert lines_of(private_engine, employee, 2027, 6) == before

    # Once June is approved, July pays no arrears again.
    with Session(private_engine) as session, session.begin():
        run_id = session.scalar(text("SELECT id FROM payroll_runs WHERE year = 2027 AND month = 6"))
        runs.approve(session, run_id, approver=None)
    july = run_and_approve(pay, 2027, 7, employee)
    assert line(july, "allowances", "arrears") == D("0.00") and line(july, "deductions", "pf_arrears") == D("0.00")
    assert july["gross_salary"] == D("18000.00")
    assert lines_of(private_engine, employee, 2027, 7) == []

    # The payslip prints them (component, month, amount) beside the usual lines.
    with Session(private_engine) as session:
        record = session.scalars(select(SalaryRecord).where(
            SalaryRecord.employee_id == employee, SalaryRecord.year == 2027, SalaryRecord.month == 6)).one()
        detail = session.scalars(select(SalaryRecordDetail).where(SalaryRecordDetail.salary_record_id == record.id)).one()
        assert payslip_pdf(record, detail).startswith(b"%PDF")
