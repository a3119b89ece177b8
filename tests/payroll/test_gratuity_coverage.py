"""Gratuity of an employee the Payment of Gratuity Act does not cover (issue 15): Income-tax Act
s.10(10)(iii) exempts the least of the gratuity, the ceiling (Rs 10 lakh from 24 May 2010, Rs 20 lakh
for those leaving on or after 29 March 2018) and half a month's average salary of the 10 months before
the month of leaving per completed year (a part year not counting). Coverage is the employee's flag, or
the company's separation policy. Expected figures from the formula in integer paise. And the review of
the Act's own eligibility: five years, or four and a last year of 240 days (s.2A(2)(a)(ii)), at the
boundary days, 29 February joiners included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import settlement_tax
from ombaro.payroll.final_settlement import service
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import run_final_settlement


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


def half_up(value: Fraction) -> D:
    paise = value * 100
    whole, rest = divmod(paise.numerator, paise.denominator)
    return D(whole + (1 if 2 * rest >= paise.denominator else 0)) / 100


@pytest.mark.parametrize(
    ("left", "ceiling"),
    [
        (dt.date(2010, 5, 23), None),  # before the first row: no data
        (dt.date(2010, 5, 24), D("1000000")),
        (dt.date(2018, 3, 28), D("1000000")),
        (dt.date(2018, 3, 29), D("2000000")),  # notification 16/2019: leaving on or after 29 March 2018
    ],
)
def test_the_uncovered_ceiling_follows_the_leaving_date(book: RateBook, left: dt.date, ceiling: D | None) -> None:
    if ceiling is None:
        with pytest.raises(LookupError):
            book.gratuity_exemption(left)
        return
    # 10 months of 5,00,000: half a month's average x 30 years = 75,00,000; the ceiling binds.
    part = settlement_tax.uncovered_gratuity_part(D("3000000.00"), [D(500000)] * 10, 30, book.gratuity_exemption(left))
    assert part.exempt == ceiling and part.limits["half_month_average_salary_per_year"] == D("7500000.00")


def test_a_part_year_does_not_count_and_the_average_is_of_ten_months(book: RateBook) -> None:
    rule = book.gratuity_exemption(dt.date(2026, 1, 1))
    # 9 x 30,000 and 1 x 40,000 = 3,10,000: average 31,000, half 15,500, x 7 completed years = 1,08,500.
    part = settlement_tax.uncovered_gratuity_part(D("200000.00"), [D(30000)] * 9 + [D(40000)], 7, rule)
    assert (part.exempt, part.taxable) == (D("108500.00"), D("91500.00"))
    with pytest.raises(ValueError, match="10 months"):
        settlement_tax.uncovered_gratuity_part(D("1.00"), [D(1)] * 9, 7, rule)


@given(
    paid=st.decimals(0, 5_000_000, places=2),
    salaries=st.lists(st.decimals(0, 400_000, places=2), min_size=10, max_size=10),
    years=st.integers(0, 45),
    left=st.dates(dt.date(2010, 5, 24), dt.date(2030, 12, 31)),
)
def test_uncovered_exemption_is_the_least_of_the_three(
    book: RateBook, paid: D, salaries: list[D], years: int, left: dt.date
) -> None:
    ceiling = 2_000_000 if left >= dt.date(2018, 3, 29) else 1_000_000
    formula = half_up(sum((Fraction(s) for s in salaries), Fraction(0)) / 10 / 2 * years)
    part = settlement_tax.uncovered_gratuity_part(paid, salaries, years, book.gratuity_exemption(left))
    assert part.exempt == min(paid, D(ceiling), formula)
    assert part.exempt + part.taxable == paid and part.taxable >= 0


def test_an_uncovered_leaver_is_exempt_under_iii_by_the_months_before_the_month_of_leaving(engine: Engine) -> None:
    # Joined 1 June 2018, leaving 20 March 2027: 8 completed years (and 293 days, which (iii) does not count).
    employee = new_employee(engine, joining=dt.date(2018, 6, 1), last_day=dt.date(2027, 3, 20))
    add_structure(engine, employee, dt.date(2018, 6, 1), basic="39000", esi=False, pf=False)
    add_structure(engine, employee, dt.date(2027, 3, 1), basic="52000", esi=False, pf=False)  # the leaving month
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET gratuity_act_covered = false WHERE id = :e"), {"e": employee})
    done = run_final_settlement(
        engine, {"employee_id": str(employee), "earned_leave_days": "0", "leave_override_reason": "no leave left"}
    )
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert isinstance(result, dict)
    # Paid by the Act's formula (the company's scheme): 52,000 x 15 x 9 / 26 = 2,70,000 (8 years 293 days: 9).
    assert result["gratuity"] == "270000.00"
    # Exempt: May 2026 - February 2027 at 39,000 (March's raise is not in the ten months before March):
    # 39,000 / 2 x 8 = 1,56,000; the rest is salary.
    tax = result["explanation"]["tax"]["gratuity"]
    assert tax["section"] == "10(10)(iii)" and tax["half_month_average_salary_per_year"] == "156000.00"
    assert (result["gratuity_exempt"], result["gratuity_taxable"]) == ("156000.00", "114000.00")
    assert result["explanation"]["gratuity_act_covered"] is False


def test_coverage_defaults_to_the_companys_policy(engine: Engine) -> None:
    employee = new_employee(engine, joining=dt.date(2018, 6, 1), last_day=dt.date(2027, 3, 20))
    add_structure(engine, employee, dt.date(2018, 6, 1), basic="39000", esi=False, pf=False)
    params = {"employee_id": str(employee), "earned_leave_days": "0", "leave_override_reason": "no leave left"}
    covered = run_final_settlement(engine, params)["result"]
    assert isinstance(covered, dict)
    assert covered["explanation"]["tax"]["gratuity"]["section"] == "10(10)(ii)"
    assert covered["gratuity_exempt"] == covered["gratuity"] == "202500.00"  # 39,000 x 15 x 9 / 26
    with engine.begin() as conn:  # the establishment is not covered (fewer than ten employees, s.1(3)(b))
        conn.execute(
            text(
                "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
                "SELECT kind, scope, '2027-03-20', data || CAST(:off AS jsonb), 'test' "
                "FROM statutory_rates WHERE kind = 'separation' ORDER BY effective_from DESC LIMIT 1"
            ),
            {"off": '{"gratuity_act_covered": false}'},
        )
    try:
        uncovered = run_final_settlement(engine, params)["result"]
        assert isinstance(uncovered, dict)
        assert uncovered["explanation"]["tax"]["gratuity"]["section"] == "10(10)(iii)"
        assert uncovered["gratuity_exempt"] == "156000.00"  # 39,000 / 2 x 8
        with engine.begin() as conn:  # the employee's own flag wins over the company's
            conn.execute(text("UPDATE employees SET gratuity_act_covered = true WHERE id = :e"), {"e": employee})
        again = run_final_settlement(engine, params)["result"]
        assert isinstance(again, dict) and again["explanation"]["tax"]["gratuity"]["section"] == "10(10)(ii)"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM statutory_rates WHERE kind = 'separation' AND source = 'test'"))


# --- Payment of Gratuity Act s.4(1) with s.2A(2)(a)(ii): the boundary days (issue 15's review) -------------


def completed(joined: dt.date, end: dt.date) -> tuple[int, int]:
    """Completed years from `joined` to `end` (exclusive) and the days after the last of them, by
    comparing (month, day); an anniversary of 29 February falls on 1 March in a common year."""
    years = end.year - joined.year - (1 if (end.month, end.day) < (joined.month, joined.day) else 0)
    year = joined.year + years
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    since = (
        dt.date(year, 3, 1)
        if (joined.month, joined.day) == (2, 29) and not leap
        else dt.date(year, joined.month, joined.day)
    )
    if since > end:  # 29 February joiner, 28 February end in a common year
        years -= 1
        since = dt.date(joined.year + years, joined.month, joined.day if joined.day != 29 else 28)
    return years, (end - since).days


@pytest.mark.parametrize(
    ("joined", "last_day", "eligible"),
    [
        (dt.date(2020, 1, 1), dt.date(2024, 8, 26), False),  # 4 years 239 days
        (dt.date(2020, 1, 1), dt.date(2024, 8, 27), True),  # 4 years 240 days
        (dt.date(2020, 1, 1), dt.date(2024, 12, 30), True),  # 4 years 365 days (2024 is a leap year)
        (dt.date(2020, 1, 1), dt.date(2024, 12, 31), True),  # 5 years 0 days
        (dt.date(2021, 3, 1), dt.date(2025, 10, 26), True),  # 4 years 240 days across no 29 February
        (dt.date(2021, 3, 1), dt.date(2025, 10, 25), False),  # 4 years 239 days
        (dt.date(2020, 2, 29), dt.date(2024, 10, 24), False),  # anniversary 29 February 2024: 239 days
        (dt.date(2020, 2, 29), dt.date(2024, 10, 25), True),  # 240 days
    ],
)
def test_the_fifth_year_counts_from_240_days(
    book: RateBook, joined: dt.date, last_day: dt.date, eligible: bool
) -> None:
    worked = service(joined, last_day, book.gratuity(last_day))
    assert worked.eligible is eligible
    assert (worked.years, worked.days) == completed(joined, last_day + dt.timedelta(days=1))


@given(joined=st.dates(dt.date(2000, 1, 1), dt.date(2022, 12, 31)), length=st.integers(1, 4000))
def test_eligibility_is_five_years_or_four_and_240_days(book: RateBook, joined: dt.date, length: int) -> None:
    last_day = joined + dt.timedelta(days=length)
    years, days = completed(joined, last_day + dt.timedelta(days=1))
    rule = book.gratuity(max(last_day, dt.date(2010, 5, 24)))
    assert service(joined, last_day, rule).eligible is (years >= 5 or (years == 4 and days >= 240))


def test_no_gratuity_rule_before_the_2010_ceiling(book: RateBook) -> None:
    with pytest.raises(LookupError):
        book.gratuity(dt.date(2010, 5, 23))
    assert book.gratuity(dt.date(2010, 5, 24)).ceiling == D("1000000")
