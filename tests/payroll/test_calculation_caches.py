"""What the calculation computes once and shares (issue 16, branch payroll6): a structure's monthly
lines and gross, a period's dates and indexes, a tax regime's slab bounds. Each shared value must be
what computing it afresh gives, and a shared mapping must not be writable."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro.payroll.calculation import COMPONENTS, ZERO, Period, Structure
from ombaro.payroll.rates import HUNDRED, RateBook

amounts = st.decimals(min_value=0, max_value=300_000, places=2, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


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
