"""Tax on a full and final settlement (issue 15): the exempt parts of gratuity (Income-tax Act
s.10(10)(ii)) and leave encashment (s.10(10AA)(ii)) at their boundaries (each ceiling on either side of
its date, each limit binding in turn), checked against the statute's formula in integer paise, and the
TDS on the taxable part (the year's tax with it less without it) on a recorded settlement."""

from __future__ import annotations

import datetime as dt
import re
import zlib
from decimal import Decimal as D
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import final_settlement, settlement_tax
from ombaro.payroll.calculation import Structure
from ombaro.payroll.rates import RateBook
from tests.factories.accounts import client_for, make_account
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, run_final_settlement


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


def half_up(value: Fraction) -> D:
    """An exact amount in rupees rounded to the paisa, half away from zero, in integers."""
    paise = value * 100
    whole, rest = divmod(paise.numerator, paise.denominator)
    return D(whole + (1 if 2 * rest >= paise.denominator else 0)) / 100


@pytest.mark.parametrize(("left", "ceiling"), [
    (dt.date(2018, 3, 28), D("1000000")),  # Rs 10 lakh for those leaving before 29 March 2018
    (dt.date(2018, 3, 29), D("2000000")),  # Rs 20 lakh from that day
])
def test_gratuity_exemption_ceiling_follows_the_leaving_date(book: RateBook, left: dt.date, ceiling: D) -> None:
    # 25 lakh paid (beyond the Act's ceiling: an employer's own scheme), 5,00,000 x 15 x 20 / 26 = 57,69,230.77.
    part = settlement_tax.gratuity_part(D("2500000.00"), D("500000"), 20, book.gratuity_exemption(left))
    assert part.exempt == ceiling and part.taxable == D("2500000.00") - ceiling
    assert part.limits["fifteen_days_per_year"] == D("5769230.77")


def test_gratuity_beyond_fifteen_days_a_year_is_salary(book: RateBook) -> None:
    # 26,000 x 15 x 5 / 26 = 75,000 exempt of 2,00,000 paid.
    part = settlement_tax.gratuity_part(D("200000.00"), D("26000"), 5, book.gratuity_exemption(dt.date(2025, 1, 1)))
    assert (part.exempt, part.taxable) == (D("75000.00"), D("125000.00"))


@pytest.mark.parametrize(("left", "ceiling"), [
    (dt.date(2023, 3, 31), D("300000")),  # Rs 3 lakh before 1 April 2023
    (dt.date(2023, 4, 1), D("2500000")),  # Rs 25 lakh from that day
])
def test_leave_encashment_ceiling_follows_the_leaving_date(book: RateBook, left: dt.date, ceiling: D) -> None:
    # 300 days at 4,00,000 a month: cash equivalent 300 x 40,00,000 / 300 = 40,00,000; ten months 40,00,000.
    rule = book.leave_encashment_exemption(left)
    part = settlement_tax.encashment_part(D("4615384.62"), [D("400000")] * 10, D("300"), 20, rule)
    assert part.exempt == ceiling and part.taxable == D("4615384.62") - ceiling


def test_leave_beyond_thirty_days_a_completed_year_is_salary(book: RateBook) -> None:
    # 4 completed years: at most 120 of the 200 days; 120 x (10 x 30,000) / 300 = 1,20,000 exempt.
    rule = book.leave_encashment_exemption(dt.date(2025, 1, 1))
    part = settlement_tax.encashment_part(D("230769.23"), [D("30000")] * 10, D("200"), 4, rule)
    assert part.limits["leave_cash_equivalent"] == D("120000.00")
    assert (part.exempt, part.taxable) == (D("120000.00"), D("110769.23"))


def test_ten_months_average_is_the_last_ten_months_of_service() -> None:
    # A raise on 1 November 2024, leaving 31 March 2025: five months at 40,000, five at 30,000; nothing
    # before joining.
    structures = (Structure(dt.date(2024, 1, 1), D("30000")), Structure(dt.date(2024, 11, 1), D("40000")))
    months = final_settlement.salary_months(structures, dt.date(2024, 1, 1), dt.date(2025, 3, 31), 10, ("basic",))
    assert months == [D("40000")] * 5 + [D("30000")] * 5
    late = final_settlement.salary_months(structures, dt.date(2024, 8, 15), dt.date(2025, 3, 31), 10, ("basic",))
    # Month ends 31 Oct, 30 Sep and 31 Aug employed; 31 July and 30 June before joining.
    assert late == [D("40000")] * 5 + [D("30000")] * 3 + [D("0.00")] * 2


rupees = st.integers(min_value=0, max_value=5_000_000_00).map(lambda p: D(p) / 100)


@settings(max_examples=200, deadline=None)
@given(paid=rupees, wage=rupees, years=st.integers(min_value=0, max_value=45),
       left=st.dates(min_value=dt.date(2010, 5, 24), max_value=dt.date(2030, 12, 31)))
def test_gratuity_exemption_is_the_least_of_the_three(book: RateBook, paid: D, wage: D, years: int,
                                                      left: dt.date) -> None:
    rule = book.gratuity_exemption(left)
    ceiling = D("2000000") if left >= dt.date(2018, 3, 29) else D("1000000")  # the statute, not the row
    formula = half_up(Fraction(wage) * 15 * years / 26)
    part = settlement_tax.gratuity_part(paid, wage, years, rule)
    assert part.exempt == min(paid, ceiling, formula)
    assert part.exempt + part.taxable == paid and part.taxable >= 0


@settings(max_examples=200, deadline=None)
@given(paid=rupees, salaries=st.lists(st.integers(min_value=0, max_value=10_000_000).map(D), min_size=10, max_size=10),
       half_days=st.integers(min_value=0, max_value=2000), years=st.integers(min_value=0, max_value=45),
       left=st.dates(min_value=dt.date(1998, 4, 1), max_value=dt.date(2030, 12, 31)))
def test_leave_encashment_exemption_is_the_least_of_the_four(book: RateBook, paid: D, salaries: list[D],
                                                             half_days: int, years: int, left: dt.date) -> None:
    rule = book.leave_encashment_exemption(left)
    ceiling = D("2500000") if left >= dt.date(2023, 4, 1) else D("300000")
    days = Fraction(half_days, 2)
    average = Fraction(sum(salaries)) / 10
    cash = half_up(min(days, 30 * years) * average / 30)
    part = settlement_tax.encashment_part(paid, salaries, D(half_days) / 2, years, rule)
    assert part.exempt == min(paid, ceiling, half_up(10 * average), cash)
    assert part.exempt + part.taxable == paid


def pdf_text(data: bytes) -> bytes:
    """The PDF's page content, inflated (fpdf2 compresses its streams)."""
    return b"".join(zlib.decompress(m) for m in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S)
                    if m[:1] == b"x")


def test_a_settlement_records_exempt_taxable_and_the_tds_on_the_taxable_part(engine: Engine, app: Any) -> None:
    hr = make_account(engine, "hr_department")
    employee = new_employee(engine, joining=dt.date(2018, 1, 1), last_day=dt.date(2027, 1, 31))
    add_structure(engine, employee, dt.date(2018, 1, 1), basic="150000", esi=False, pf=False)
    with engine.begin() as conn:  # Form 12B: 15 lakh paid April-December (this payroll did not pay them)
        conn.execute(text("INSERT INTO tax_declarations (employee_id, financial_year, regime, previous_income, "
                          "previous_tds) VALUES (:e, 2026, 'new', 1500000, 0)"), {"e": employee})
    done = run_final_settlement(engine, {"employee_id": str(employee), "earned_leave_days": "250",
                                         "leave_override_reason": "leave before the ledger was kept"})
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert isinstance(result, dict)
    # Gratuity: 9 years, 1,50,000 x 15 x 9 / 26 = 7,78,846.15, all exempt (the same formula, within 20 lakh).
    assert (result["gratuity"], result["gratuity_exempt"], result["gratuity_taxable"]) == (
        "778846.15", "778846.15", "0.00")
    # Encashment: 250 x 1,50,000 / 26 = 14,42,307.69 paid; exempt the least of 25 lakh, ten months 15,00,000,
    # and 250 days (within 9 x 30) x 15,00,000 / 300 = 12,50,000.
    assert (result["leave_encashment"], result["encashment_exempt"], result["encashment_taxable"]) == (
        "1442307.69", "1250000.00", "192307.69")
    # Year's income: 15,00,000 declared + January 1,50,000 = 16,50,000, less 75,000: 15,75,000 taxable.
    # Without: 20,000 + 40,000 + 15% x 3,75,000 = 1,16,250; with 1,92,307.69 more (17,67,307.69):
    # 20,000 + 40,000 + 60,000 + 20% x 1,67,307.69 = 1,53,461.538; difference x 1.04 cess = 38,700.
    without = (D(20000) + D(40000) + D("0.15") * D(375000)) * D("1.04")
    with_it = (D(120000) + D("0.20") * (D("1767307.69") - D(1600000))) * D("1.04")
    assert D(result["tds"]) == (with_it - without).quantize(D(1)) == D("38700.00")
    assert result["net_amount"] == str(D("778846.15") + D("1442307.69") - D("38700.00"))
    tax = result["explanation"]["tax"]
    assert tax["tds"]["year_income"] == "1650000.00" and tax["tds"]["regime"] == "new"
    assert tax["leave_encashment"]["section"] == "10(10AA)(ii)"
    with Session(engine) as session:
        row = final_settlement.get(session, employee)
        assert (row.tds, row.encashment_taxable, row.net_amount) == (D("38700.00"), D("192307.69"), D("2182453.84"))
    shown = client_for(app, hr).get(f"/api/v1/payroll/final-settlements/{employee}")
    assert shown.status_code == 200
    assert {k: shown.json[k] for k in ("gratuity_exempt", "gratuity_taxable", "encashment_exempt",
                                       "encashment_taxable", "tds", "net_amount")} == {
        "gratuity_exempt": "778846.15", "gratuity_taxable": "0.00", "encashment_exempt": "1250000.00",
        "encashment_taxable": "192307.69", "tds": "38700.00", "net_amount": "2182453.84"}
    statement = client_for(app, hr).get(f"/api/v1/payroll/final-settlements/{employee}/statement")
    page = pdf_text(statement.data)
    assert b"10AA" in page and b"38,700.00" in page and b"1,92,307.69" in page


def test_a_last_month_computed_before_the_leaving_date_was_set_is_not_taken_as_the_years_income(
        engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2018, 1, 1))
    add_structure(engine, employee, dt.date(2018, 1, 1), basic="150000", esi=False, pf=False)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tax_declarations (employee_id, financial_year, regime, previous_income, "
                          "previous_tds) VALUES (:e, 2026, 'new', 1500000, 0)"), {"e": employee})
    driver.run(2027, 1, employee_ids=[employee])  # still employed: January projects February and March too
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET last_working_date = '2027-01-31' WHERE id = :e"), {"e": employee})
    done = run_final_settlement(engine, {"employee_id": str(employee), "earned_leave_days": "250",
                                         "leave_override_reason": "leave before the ledger was kept"})
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert isinstance(result, dict)
    assert result["explanation"]["salary"]["tds"]["months_left_after"] == 2
    # The year's income is the records (January 1,50,000) and the 12B's 15,00,000, not January's 19,50,000
    # projection: the same 38,700 as above.
    assert result["explanation"]["tax"]["tds"]["year_income"] == "1650000.00"
    assert result["tds"] == "38700.00"
