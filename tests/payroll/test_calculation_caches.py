"""What the calculation computes once and shares (issue 16, branch payroll6): a structure's monthly
lines and gross, a period's dates and indexes, a tax regime's slab bounds; since session 10 (branch
paycalc10) a month's rates per rate book (`MonthRates`) and the tax below each slab. Each shared value
must be what computing it afresh gives, a shared mapping must not be writable, and what one book or
month keeps is never another's."""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll.calculation import (
    COMPONENTS,
    ZERO,
    EmployeeMonth,
    Period,
    Structure,
    compute,
    compute_or_reason,
    month_rates,
)
from ombaro.payroll.rates import HUNDRED, MissingRate, RateBook

amounts = st.decimals(min_value=0, max_value=300_000, places=2, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


@pytest.fixture(scope="module")
def rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT kind, scope, effective_from, data FROM statutory_rates"))]


def someone(structure: Structure) -> EmployeeMonth:
    return EmployeeMonth(employee_id=uuid.uuid4(), code="C", name="Cache", joining_date=dt.date(2015, 1, 1),
                         last_working_date=None, structures=(structure,))


@given(basic=amounts, hra=amounts, special=amounts, other=amounts)
def test_a_structures_monthly_lines_are_computed_once_and_read_only(basic: D, hra: D, special: D, other: D) -> None:
    structure = Structure(dt.date(2026, 1, 1), basic, hra=hra, special=special, other=other)
    lines = structure.monthly()
    assert lines is structure.monthly()  # one mapping for the payslip's blocks and explanation
    assert dict(lines) == {c: getattr(structure, c) for c in COMPONENTS}
    assert structure.monthly_gross() == sum((getattr(structure, c) for c in COMPONENTS), ZERO)
    with pytest.raises(TypeError):
        lines["basic"] = D(0)  # type: ignore[index]
    assert structure.monthly()["basic"] == basic


@given(year=st.integers(2000, 2099), month=st.integers(1, 12))  # 2100: its year ends past 2100
def test_a_periods_derived_values_are_what_its_month_gives(year: int, month: int) -> None:
    period = Period(year, month)
    for _ in range(2):  # the first access computes, the second reads what was kept
        assert period.start == dt.date(year, month, 1)
        assert period.end == dt.date(year, month, calendar.monthrange(year, month)[1])
        assert period.index == year * 12 + month - 1
        assert period.fy_start == dt.date(year if month >= 4 else year - 1, 4, 1)
        assert period.fy_end_index == (period.fy_start.year + 1) * 12 + 2
    assert period == Period(year, month) and hash(period) == hash(Period(year, month))


@pytest.mark.parametrize("regime_name", ["new", "old"])
def test_slab_tax_with_the_regimes_kept_bounds_is_the_slab_by_slab_sum(book: RateBook, regime_name: str) -> None:
    regime = book.income_tax(dt.date(2026, 4, 1), regime_name)

    def by_hand(income: D) -> D:  # the slabs' sum written out, bounds taken afresh
        tax = D(0)
        for i, slab in enumerate(regime.slabs):
            if income <= slab.over:
                break
            upper = regime.slabs[i + 1].over if i + 1 < len(regime.slabs) else None
            top = income if upper is None else min(income, upper)
            tax += (top - slab.over) * slab.rate / HUNDRED
        return tax

    incomes = [D(0), D("0.01"), *(s.over for s in regime.slabs), *(s.over + D("0.01") for s in regime.slabs),
               D("1234567.89"), D("99999999.99")]
    for income in incomes:
        assert regime.slab_tax(income) == by_hand(income), income
        assert str(regime.slab_tax(income)) == str(by_hand(income))


def test_a_months_rates_are_kept_per_book_and_month_and_are_what_the_book_says(rows: list[tuple[Any, ...]]) -> None:
    """Two books (the second with a PF row from June 2027) and two months: each (book, month) keeps its
    own rates, each what its book answers for that month, and a payslip follows its own book."""
    june, may = Period(2027, 6), Period(2027, 5)
    richer = {"employee_rate": "10", "employer_rate": "12", "eps_rate": "8.33", "wage_ceiling": "15000",
              "rounding": "rupee", "cap_wages": True}
    first, second = RateBook(rows), RateBook([*rows, ("pf", "IN", june.start, richer)])
    assert month_rates(first, june) is month_rates(first, Period(2027, 6))  # kept, by the month's value
    assert month_rates(first, june) is not month_rates(second, june)
    assert month_rates(first, june) is not month_rates(first, may)
    for book in (first, second):
        for period in (june, may):
            rates = month_rates(book, period)
            assert rates.pf == book.pf(period.start) and rates.esi == book.esi(period.start)
            assert rates.overtime == book.overtime(period.start)
            assert rates.deduction_limit == book.deduction_limit(period.start)
            assert rates.income_tax("old") == book.income_tax(period.fy_start, "old")
            assert rates.professional_tax("TN") == book.professional_tax("TN", period.start)
            assert rates.esi_period_start == Period(*rates.esi.period_start(period.year, period.month)).index
            pt = rates.professional_tax("TN")
            assert rates.pt_half_year_start("TN") == Period(*pt.half_year_start(period.year, period.month)).index
    assert month_rates(second, june).pf.employee_rate == D(10) != month_rates(first, june).pf.employee_rate
    assert month_rates(second, may).pf == month_rates(first, may).pf
    structure = Structure(dt.date(2015, 1, 1), D("12000"), esi_applicable=False)
    in_second = compute(someone(structure), june, second)
    assert compute(someone(structure), june, first).deductions["pf"] == D("1440.00")  # 12% of 12,000
    assert in_second.deductions["pf"] == D("1200.00")  # 10%: the second book's row
    assert compute(someone(structure), may, second).deductions["pf"] == D("1440.00")


def test_a_missing_rate_is_not_kept_and_fails_only_those_who_need_it(rows: list[tuple[Any, ...]]) -> None:
    without_pf = RateBook([r for r in rows if r[0] != "pf"])
    june = Period(2027, 6)
    for _ in range(2):  # the second ask finds no kept answer and fails the same way
        with pytest.raises(MissingRate):
            month_rates(without_pf, june).pf  # noqa: B018 (the look-up is the test)
    needs_pf = compute_or_reason(someone(Structure(dt.date(2015, 1, 1), D("12000"))), june, without_pf)
    assert isinstance(needs_pf, tuple) and needs_pf[0] == "MissingRate"
    no_pf = compute(someone(Structure(dt.date(2015, 1, 1), D("12000"), pf_applicable=False)), june, without_pf)
    assert no_pf.deductions["pf"] == ZERO


@given(income=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_slab_tax_from_the_kept_tax_below_is_the_slab_by_slab_sum_to_the_digit(book: RateBook, income: D) -> None:
    for regime_name in ("new", "old"):
        regime = book.income_tax(dt.date(2026, 4, 1), regime_name)
        tax = D(0)  # the slab-by-slab loop, as before the tax below each slab was kept
        for i, slab in enumerate(regime.slabs):
            if income <= slab.over:
                break
            upper = regime.slabs[i + 1].over if i + 1 < len(regime.slabs) else None
            tax += ((income if upper is None else min(income, upper)) - slab.over) * slab.rate / HUNDRED
        assert str(regime.slab_tax(income)) == str(tax)
