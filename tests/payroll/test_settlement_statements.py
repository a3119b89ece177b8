"""A paid full and final settlement in the year's tax figures (issue 15): its gratuity and leave
encashment are salary under Income-tax Act s.17(1), their exempt parts (s.10(10), s.10(10AA)) come off
in Form 16 Part B, its TDS is added to the months', and Form 24Q counts it in the quarter of its
payment date; the year's TDS then equals the tax on the year's income, computed here from the schedule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import statements
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, run_final_settlement


def new_regime_tax(income: Fraction) -> Fraction:
    """Section 115BAC from FY 2025-26: standard deduction 75,000; 0/5/10/15/20/25/30% at 4, 8, 12, 16,
    20, 24 lakh; s.87A rebate up to 60,000 to 12 lakh taxable (marginal relief above it); 4% cess."""
    taxable = max(Fraction(0), income - 75_000)
    bands = [
        (400_000, 800_000, 5),
        (800_000, 1_200_000, 10),
        (1_200_000, 1_600_000, 15),
        (1_600_000, 2_000_000, 20),
        (2_000_000, 2_400_000, 25),
        (2_400_000, None, 30),
    ]
    tax = sum(
        (Fraction(max(Fraction(0), min(taxable, hi if hi else taxable) - lo)) * rate / 100 for lo, hi, rate in bands),
        Fraction(0),
    )
    tax = max(Fraction(0), tax - 60_000) if taxable <= 1_200_000 else min(tax, taxable - 1_200_000)
    return tax * 104 / 100


def to_rupee(value: Fraction) -> int:
    whole, rest = divmod(value.numerator, value.denominator)
    return whole + (1 if 2 * rest >= value.denominator else 0)


def test_a_paid_settlement_is_in_form16_and_24q_by_the_month_paid(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2018, 1, 1), last_day=dt.date(2027, 1, 31))
    add_structure(engine, employee, dt.date(2018, 1, 1), basic="150000", esi=False, pf=False)
    with engine.begin() as conn:  # Form 12B: 15 lakh paid April-December by a previous employer
        conn.execute(
            text(
                "INSERT INTO tax_declarations (employee_id, financial_year, regime, previous_income, "
                "previous_tds) VALUES (:e, 2026, 'new', 1500000, 116250)"
            ),
            {"e": employee},
        )
    driver.run(2027, 1, employee_ids=[employee])
    done = run_final_settlement(
        engine,
        {
            "employee_id": str(employee),
            "earned_leave_days": "250",
            "leave_override_reason": "leave before the ledger was kept",
        },
    )
    assert done["status"] == "succeeded", done
    settled = done["result"]
    assert isinstance(settled, dict)
    with Session(engine) as session:
        before = {e["employee_id"]: e for e in statements.tax_statements(session, 2026)["employees"]}
    assert str(employee) not in before  # nothing paid yet
    with engine.begin() as conn:  # January's salary and, in February, the settlement are paid
        conn.execute(text("UPDATE salary_records SET status = 'paid' WHERE employee_id = :e"), {"e": employee})
        conn.execute(
            text("UPDATE final_settlements SET status = 'paid', payment_date = '2027-02-10' WHERE employee_id = :e"),
            {"e": employee},
        )
        january = conn.execute(
            text(
                "SELECT gross_salary, (deductions ->> 'tds')::numeric AS tds FROM salary_records "
                "WHERE employee_id = :e AND year = 2027 AND month = 1"
            ),
            {"e": employee},
        ).one()
    with Session(engine) as session:
        found = {e["employee_id"]: e for e in statements.tax_statements(session, 2026)["employees"]}
    mine = found[str(employee)]
    part_b = mine["form16_part_b"]
    gratuity, encashment = D(settled["gratuity"]), D(settled["leave_encashment"])
    gratuity_exempt, encashment_exempt = D(settled["gratuity_exempt"]), D(settled["encashment_exempt"])
    assert D(part_b["salary_paid"]) == january.gross_salary + gratuity + encashment  # s.17(1)
    assert D(part_b["final_settlement_paid"]) == gratuity + encashment
    assert D(part_b["exempt_gratuity_s10_10"]) == gratuity_exempt == D("778846.15")
    assert D(part_b["exempt_leave_encashment_s10_10aa"]) == encashment_exempt == D("1250000.00")
    income = (
        Fraction(january.gross_salary)
        + Fraction(gratuity + encashment - gratuity_exempt - encashment_exempt)
        + 1_500_000
    )
    assert D(part_b["gross_total"]) == D(income.numerator) / D(income.denominator)
    assert D(part_b["tax_payable"]) == to_rupee(new_regime_tax(income))
    # The year's TDS: January's and the settlement's, with the 12B's, is the year's tax to the rupee.
    assert D(part_b["tds_by_this_employer"]) == january.tds + D(settled["tds"])
    assert (
        abs(
            D(part_b["tds_by_this_employer"]) + D(part_b["tds_by_previous_employer"]) - to_rupee(new_regime_tax(income))
        )
        <= 1
    )
    quarters = {q["quarter"]: q for q in mine["form24q"]}
    assert (D(quarters[4]["amount_paid"]), D(quarters[4]["tds_deducted"])) == (
        january.gross_salary + gratuity + encashment,
        january.tds + D(settled["tds"]),
    )
    assert all(D(quarters[q]["amount_paid"]) == 0 for q in (1, 2, 3))


def test_a_settlement_paid_after_march_counts_in_the_next_year(engine: Engine) -> None:
    employee = new_employee(engine, joining=dt.date(2018, 1, 1), last_day=dt.date(2027, 3, 31))
    add_structure(engine, employee, dt.date(2018, 1, 1), basic="60000", esi=False, pf=False)
    done = run_final_settlement(
        engine,
        {
            "employee_id": str(employee),
            "earned_leave_days": "20",
            "leave_override_reason": "leave before the ledger was kept",
        },
    )
    assert done["status"] == "succeeded", done
    for paid_on, year, quarter in (("2027-03-31", 2026, 4), ("2027-04-01", 2027, 1)):
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE final_settlements SET status = 'paid', payment_date = :d WHERE employee_id = :e"),
                {"e": employee, "d": paid_on},
            )
        with Session(engine) as session:
            found = {e["employee_id"]: e for e in statements.tax_statements(session, year)["employees"]}
            other = {e["employee_id"] for e in statements.tax_statements(session, 4053 - year)["employees"]}
        quarters = {q["quarter"]: q["amount_paid"] for q in found[str(employee)]["form24q"]}
        assert D(quarters[quarter]) > 0 and sum(D(v) for v in quarters.values()) == D(quarters[quarter])
        assert str(employee) not in other
