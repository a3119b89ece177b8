"""A financial year of TDS (section 192) through real runs: joiners in every month, raises, a Form 12B
declaration, a regime change, an employee whose first run is September (declared, and not). By
March, every employee's TDS for the year (with what the 12B says was deducted before) equals the tax
on the year's income computed at once, to the rupee, by the schedule's formula written here
independently of the engine (FY 2026-27's rates, in force for FY 2030-31 too; incomes stay below the
surcharge). The year is FY 2030-31, in a database of this module's own."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from fractions import Fraction

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import preflight, records, statements
from ombaro.payroll.calculation import Period
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver

FY = 2030
MONTHS = [Period(FY, m) for m in range(4, 13)] + [Period(FY + 1, m) for m in range(1, 4)]


def new_regime_tax(income: Fraction) -> Fraction:
    """Section 115BAC (FY 2025-26 onwards): standard deduction 75,000; 0/5/10/15/20/25/30% at 4, 8, 12,
    16, 20, 24 lakh; s.87A rebate (up to 60,000) when taxable income is at most 12 lakh, and above it
    the tax never more than the income beyond 12 lakh; 4% cess."""
    taxable = max(Fraction(0), income - 75_000)
    bounds = [0, 400_000, 800_000, 1_200_000, 1_600_000, 2_000_000, 2_400_000]
    rates = [0, 5, 10, 15, 20, 25, 30]
    tax = sum((Fraction(max(0, min(taxable, bounds[i + 1] if i + 1 < len(bounds) else taxable) - lower)) * rate / 100
               for i, (lower, rate) in enumerate(zip(bounds, rates, strict=True))), Fraction(0))
    tax = max(Fraction(0), tax - 60_000) if taxable <= 1_200_000 else min(tax, taxable - 1_200_000)
    return tax * 104 / 100


def old_regime_tax(income: Fraction) -> Fraction:
    """The old regime: standard deduction 50,000; 0/5/20/30% at 2.5, 5, 10 lakh; s.87A rebate up to
    12,500 at a taxable income up to 5 lakh; 4% cess."""
    taxable = max(Fraction(0), income - 50_000)
    tax = (Fraction(max(0, min(taxable, 500_000) - 250_000)) * 5 / 100
           + Fraction(max(0, min(taxable, 1_000_000) - 500_000)) * 20 / 100
           + Fraction(max(0, taxable - 1_000_000)) * 30 / 100)
    if taxable <= 500_000:
        tax -= min(tax, Fraction(12_500))
    return tax * 104 / 100


def to_rupee(value: Fraction) -> int:
    whole, rest = divmod(value.numerator, value.denominator)
    return whole + (1 if 2 * rest >= value.denominator else 0)


def declare(engine: Engine, employee: uuid.UUID, *, regime: str = "new", income: str = "0", tds: str = "0") -> None:
    with Session(engine) as session, session.begin():
        records.set_tax_declaration(session, employee_id=employee, financial_year=FY, regime=regime,
                                    previous_income=D(income), previous_tds=D(tds), notes=None, created_by=None)


@pytest.fixture(scope="module")
def year(private_engine: Engine) -> dict[str, object]:
    engine = private_engine
    people: dict[str, uuid.UUID] = {}
    # A joiner in every month, on a different day each, at a different salary; two get raises later.
    for n, period in enumerate(MONTHS):
        joining = period.start + dt.timedelta(days=(n * 3) % 25)
        who = people[f"joiner-{period.label()}"] = new_employee(engine, joining=joining)
        add_structure(engine, who, joining, basic=str(150_000 + 10_000 * n), hra=str(60_000 + 3_000 * n),
                      special="5000", esi=False)
    add_structure(engine, people["joiner-2030-05"], dt.date(2030, 11, 15), basic="180000", hra="70000", esi=False)
    add_structure(engine, people["joiner-2030-04"], dt.date(2031, 2, 1), basic="170000", hra="66000", esi=False)
    # Employed all year with a raise on 15 October.
    steady = people["steady"] = new_employee(engine, joining=dt.date(2028, 6, 1))
    add_structure(engine, steady, dt.date(2028, 6, 1), basic="100000", hra="50000", esi=False)
    add_structure(engine, steady, dt.date(2030, 10, 15), basic="120000", hra="55000", esi=False)
    # Joins in August from another employer: Form 12B, 7 lakh paid and 40,000 deducted there.
    twelve_b = people["twelve_b"] = new_employee(engine, joining=dt.date(2030, 8, 5))
    add_structure(engine, twelve_b, dt.date(2030, 8, 5), basic="120000", hra="60000", esi=False)
    declare(engine, twelve_b, income="700000", tds="40000")
    # Opts for the old regime, declared before October's run (new regime until then).
    switcher = people["switcher"] = new_employee(engine, joining=dt.date(2029, 6, 1))
    add_structure(engine, switcher, dt.date(2029, 6, 1), basic="110000", hra="50000", esi=False)
    # Paid by the old system April to August; the engine's first run for them is September.
    late_declared = people["late_declared"] = new_employee(engine, joining=dt.date(2027, 1, 1))
    add_structure(engine, late_declared, dt.date(2027, 1, 1), basic="80000", hra="40000", esi=False)
    late_silent = people["late_silent"] = new_employee(engine, joining=dt.date(2027, 1, 1))
    add_structure(engine, late_silent, dt.date(2027, 1, 1), basic="80000", hra="40000", esi=False)

    driver = Driver(engine)
    checks = {}
    for period in MONTHS:
        if period == Period(2030, 10):
            declare(engine, switcher, regime="old")
        if period == Period(2030, 9):
            with Session(engine) as session:
                checks["before"] = preflight.preflight(session, period, as_of=period.end)
            declare(engine, late_declared, income=str(5 * 120_000), tds="60000")
            with Session(engine) as session:
                checks["after"] = preflight.preflight(session, period, as_of=period.end)
        late = {late_declared, late_silent} if period.index < Period(2030, 9).index else set()
        job = driver.run(period.year, period.month, employee_ids=[p for p in people.values() if p not in late])
        assert job["status"] == "succeeded", job
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT employee_id, year, month, gross_salary, (deductions ->> 'tds')::numeric AS tds, status "
            "FROM salary_records WHERE year * 12 + month BETWEEN :a AND :b"),
            {"a": FY * 12 + 4, "b": (FY + 1) * 12 + 3}).all()
        failures = conn.execute(text("SELECT count(*) FROM payroll_failures")).scalar_one()
    return {"people": people, "rows": rows, "failures": failures, "checks": checks}


def test_by_march_the_years_tds_is_the_years_tax_to_the_rupee(year: dict) -> None:
    people, rows = year["people"], year["rows"]
    assert year["failures"] == 0
    declared = {people["twelve_b"]: (700_000, 40_000), people["late_declared"]: (600_000, 60_000)}
    for name, employee in people.items():
        mine = [r for r in rows if r.employee_id == employee]
        income = sum((Fraction(r.gross_salary) for r in mine), Fraction(0))
        previous_income, previous_tds = declared.get(employee, (0, 0))
        if name == "late_silent":
            previous_income = 5 * 120_000  # undeclared: April-August estimated at the structure, as it was paid
        tax = (old_regime_tax if name == "switcher" else new_regime_tax)(income + previous_income)
        deducted = previous_tds + sum(int(r.tds) for r in mine)
        assert deducted == to_rupee(tax), (name, deducted, tax)
        assert all(r.tds == r.tds.to_integral_value() and r.tds >= 0 for r in mine)
    # Not trivially taxless: everyone but the last joiners (under 12.75 lakh this year) pays tax.
    taxed = {name for name, e in people.items() if sum(int(r.tds) for r in rows if r.employee_id == e) > 0}
    assert taxed >= {"steady", "twelve_b", "switcher", "late_declared", "late_silent",
                     *(f"joiner-{p.label()}" for p in MONTHS[:7])}


def test_joiners_are_paid_and_taxed_from_their_month_only(year: dict) -> None:
    people, rows = year["people"], year["rows"]
    for period in MONTHS:
        months = {(r.year, r.month) for r in rows if r.employee_id == people[f"joiner-{period.label()}"]}
        assert months == {(p.year, p.month) for p in MONTHS if p.index >= period.index}


def test_preflight_warns_about_earlier_months_missing_and_undeclared(year: dict) -> None:
    people, checks = year["people"], year["checks"]
    before = {i["employee_id"]: i for i in checks["before"]["issues"]["undeclared_months"]}
    after = {i["employee_id"]: i for i in checks["after"]["issues"]["undeclared_months"]}
    for late in ("late_declared", "late_silent"):
        found = before[str(people[late])]
        assert (found["months"], found["first_month"], found["last_month"]) == (5, "2030-04", "2030-08")
    assert str(people["late_declared"]) not in after and str(people["late_silent"]) in after
    # Joiners of the year are not warned about the months before they joined; employees with records
    # for every earlier month are not either.
    assert not {str(people[n]) for n in ("steady", "twelve_b", "switcher", "joiner-2030-06")} & set(before)


def test_form16_part_b_and_24q_figures_once_the_year_is_paid(year: dict, private_engine: Engine) -> None:
    people, rows = year["people"], year["rows"]
    with private_engine.begin() as conn:  # the bank files of the year: every record paid
        conn.execute(text("UPDATE salary_records SET status = 'paid' WHERE year * 12 + month BETWEEN :a AND :b"),
                     {"a": FY * 12 + 4, "b": (FY + 1) * 12 + 3})
    with Session(private_engine) as session:
        found = statements.tax_statements(session, FY)
    assert found["financial_year"] == "2030-31"
    by_id = {e["employee_id"]: e for e in found["employees"]}
    assert set(by_id) == {str(e) for e in people.values()}
    for name in ("twelve_b", "switcher", "steady", "joiner-2030-07"):
        employee = people[name]
        mine = [r for r in rows if r.employee_id == employee]
        part_b = by_id[str(employee)]["form16_part_b"]
        previous_income, previous_tds = (700_000, 40_000) if name == "twelve_b" else (0, 0)
        income = sum((Fraction(r.gross_salary) for r in mine), Fraction(0)) + previous_income
        tax = (old_regime_tax if name == "switcher" else new_regime_tax)(income)
        assert D(part_b["tax_payable"]) == to_rupee(tax), name
        assert D(part_b["tds_by_this_employer"]) + previous_tds == to_rupee(tax)  # deducted in full by March
        assert D(part_b["balance"]) == 0
        assert part_b["regime"] == ("old" if name == "switcher" else "new")
        quarters = {q["quarter"]: q for q in by_id[str(employee)]["form24q"]}
        for quarter, months in ((1, (4, 5, 6)), (2, (7, 8, 9)), (3, (10, 11, 12)), (4, (1, 2, 3))):
            paid = sum((r.gross_salary for r in mine if r.month in months), D(0))
            tds = sum((r.tds for r in mine if r.month in months), D(0))
            assert (D(quarters[quarter]["amount_paid"]), D(quarters[quarter]["tds_deducted"])) == (paid, tds)
    assert D(found["totals"]["tds_deducted"]) == sum((r.tds for r in rows), D(0))
