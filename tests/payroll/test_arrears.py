"""Arrears (issue 15): a compensation change backdated into approved months is paid, or recovered,
in the next run, once, per component and month; PF on the arrears of PF wages at each month's own
rates and ceiling, ESI on them as wages of the month paid, TDS on them in the month paid; a cut is
recovered within the Payment of Wages Act s.7(3) limit. Figures computed by hand beside each check;
the property computes the expected lines in integer paise, independently of the engine."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import SalaryRecordDetail
from ombaro.payroll import runs
from ombaro.payroll.calculation import (
    ApprovedMonth,
    EmployeeMonth,
    History,
    PastMonth,
    Period,
    Structure,
    arrears_due,
    compute,
)
from ombaro.payroll.documents import payslip_pdf
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, record_of

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
        detail = session.scalars(select(SalaryRecordDetail).where(
            SalaryRecordDetail.salary_record_id == record.id)).one()
        assert payslip_pdf(record, detail).startswith(b"%PDF")


def test_a_backdated_cut_is_recovered_within_the_deduction_limit(private_engine: Engine, pay: Driver) -> None:
    employee = new_employee(private_engine, joining=dt.date(2027, 1, 1))
    add_structure(private_engine, employee, dt.date(2027, 1, 1), basic="30000", esi=False)
    run_and_approve(pay, 2027, 8, employee)
    september = run_and_approve(pay, 2027, 9, employee)
    assert september["basic_salary"] == D("30000.00")
    add_structure(private_engine, employee, dt.date(2027, 9, 1), basic="20000", esi=False)  # a cut, backdated

    october = run_and_approve(pay, 2027, 10, employee)
    # Owed back: September's 30,000 - 20,000 = 10,000. October's wages 20,000; s.7(3) allows 50% = 10,000 of
    # deductions, PF (wage capped at 15,000: 1,800) takes 1,800, so 8,200 is recovered now, 1,800 later.
    assert october["gross_salary"] == D("20000.00") and line(october, "allowances", "arrears") == D("0.00")
    assert line(october, "deductions", "pf") == D("1800.00")
    assert line(october, "deductions", "arrears_recovery") == D("8200.00")
    assert october["total_deductions"] == D("10000.00")  # exactly the limit: paid, not held
    assert october["explanation"]["arrears_recovery_deferred"] == "1800.00"
    assert amounts(lines_of(private_engine, employee, 2027, 10)) == [("2027-09", "basic", D("-8200.00"))]
    assert_adds_up(october)

    november = run_and_approve(pay, 2027, 11, employee)
    assert line(november, "deductions", "arrears_recovery") == D("1800.00")
    assert amounts(lines_of(private_engine, employee, 2027, 11)) == [("2027-09", "basic", D("-1800.00"))]
    assert november["net_salary"] == D("16400.00")  # 20,000 - 1,800 PF - 1,800 recovered

    december = run_and_approve(pay, 2027, 12, employee)
    assert line(december, "deductions", "arrears_recovery") == D("0.00")
    assert lines_of(private_engine, employee, 2027, 12) == []


def test_arrears_are_taxed_whole_in_the_month_paid(book: RateBook) -> None:
    june, may = Period(2027, 6), Period(2027, 5)
    raised = Structure(dt.date(2027, 5, 1), D("200000"), pf_applicable=False, esi_applicable=False)
    before = Structure(dt.date(2015, 1, 1), D("160000"), pf_applicable=False, esi_applicable=False)
    history = History((PastMonth(Period(2027, 4).index, D("160000"), D("20000")),
                       PastMonth(may.index, D("160000"), D("20000"))))
    base = EmployeeMonth(employee_id=uuid.uuid4(), code="ARR", name="Arrears", joining_date=dt.date(2015, 1, 1),
                         last_working_date=None, structures=(before, raised), history=history)
    paid_in_may = ApprovedMonth(may, {"basic": D("160000.00")})
    with_arrears = compute(replace(base, approved=(paid_in_may,)), june, book)
    without = compute(base, june, book)
    assert with_arrears.earnings["arrears"] == D("40000.00")  # May: 2,00,000 - 1,60,000
    # FY 2027-28, new regime: projected 3,20,000 (April, May) + 2,00,000 + 40,000 + 2,00,000 x 9 = 23,60,000;
    # less 75,000: 22,85,000 -> 20,000 + 40,000 + 60,000 + 80,000 + 25% of 2,85,000 = 2,71,250, + 4% cess
    # = 2,82,100. Without the arrears: 22,45,000 -> 2,61,250 + 4% = 2,71,700. Of that, 40,000 already
    # deducted: 2,31,700 over June-March = 23,170 a month; the arrears' 10,400 all now.
    assert without.deductions["tds"] == D("23170.00")
    assert with_arrears.deductions["tds"] == D("33570.00")
    assert with_arrears.explanation["tds"]["tax_on_arrears"] == "10400.00"


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) to the nearest whole number, halves away from zero."""
    whole, rest = divmod(abs(numerator), denominator)
    whole += 1 if 2 * rest >= denominator else 0
    return whole if numerator >= 0 else -whole


paise = st.integers(min_value=0, max_value=5_000_000)


@st.composite
def backdated_changes(draw: st.DrawFn) -> dict[str, Any]:
    month = draw(st.integers(min_value=5, max_value=12))
    approved = Period(2027, month - 1)
    return {
        "approved": approved,
        "old": {c: draw(paise) for c in ("basic", "hra", "special")},
        "new": {c: draw(paise) for c in ("basic", "hra", "special")},
        "from_day": draw(st.integers(min_value=1, max_value=approved.days)),
        "lop": draw(st.dictionaries(st.integers(min_value=1, max_value=approved.days),
                                    st.sampled_from([1, 0.5]), max_size=6)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=backdated_changes())
def test_arrears_are_the_exact_difference_once(book: RateBook, case: dict[str, Any]) -> None:
    approved: Period = case["approved"]
    days = approved.days
    old, new, from_day = case["old"], case["new"], case["from_day"]
    # Independently, in half-days and paise: the month as it should have been and as it was paid.
    lop_before = sum(w for d, w in case["lop"].items() if d < from_day)
    lop_after = sum(w for d, w in case["lop"].items() if d >= from_day)
    halves_before = int(2 * (from_day - 1 - lop_before))
    halves_after = int(2 * (days - from_day + 1 - lop_after))
    expected, paid = {}, {}
    for c in old:
        paid[c] = half_up(old[c] * (halves_before + halves_after), 2 * days)
        expected[c] = half_up(old[c] * halves_before + new[c] * halves_after, 2 * days) - paid[c]

    def structure(values: dict[str, int], effective_from: dt.date) -> Structure:
        return Structure(effective_from, **{c: D(v) / 100 for c, v in values.items()},  # type: ignore[arg-type]
                         pf_applicable=False, esi_applicable=False)

    structures = (structure(old, dt.date(2015, 1, 1)), structure(new, dt.date(approved.year, approved.month, from_day)))
    paid_month = ApprovedMonth(approved, {c: D(v) / 100 for c, v in paid.items()})
    employee = EmployeeMonth(employee_id=uuid.uuid4(), code="ARR", name="Arrears", joining_date=dt.date(2015, 1, 1),
                             last_working_date=None, structures=structures, approved=(paid_month,),
                             lop={dt.date(approved.year, approved.month, d): D(str(w)) for d, w in case["lop"].items()})
    slip = compute(employee, Period(2027, approved.month + 1), book)

    found = {a.component: a.amount for a in arrears_due(employee, book)}
    assert found == {c: D(v) / 100 for c, v in expected.items() if v}
    owed = sum(expected.values())
    recorded = sum((a.amount for a in slip.arrears), D(0))
    assert slip.earnings["arrears"] == (D(owed) / 100 if owed > 0 else D(0))
    assert recorded == slip.earnings["arrears"] - slip.deductions["arrears_recovery"]
    assert D(0) <= slip.deductions["arrears_recovery"] <= (D(-owed) / 100 if owed < 0 else D(0))
    assert slip.gross - slip.total_deductions == slip.net and slip.hold_reason is None

    # Recorded, they are paid: the next month finds nothing more than what is still owed.
    paid_since = {c: paid_month.paid[c] + sum((a.amount for a in slip.arrears if a.component == c), D(0))
                  for c in paid_month.paid}
    later = replace(employee, approved=(ApprovedMonth(approved, paid_since),))
    left = sum((a.amount for a in arrears_due(later, book)), D(0))
    assert left == D(owed) / 100 - recorded
