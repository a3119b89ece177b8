"""ombaro/money.py: exact rounding once, half away from zero, strict parsing, Indian grouping."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ombaro import money


@pytest.mark.parametrize(("value", "rule", "expected"), [
    (money.exact("36500") * 2 / 208 * money.exact("15.99"), "paisa", "5611.88"),  # exactly 5611.875
    (money.exact("20000.40") * 2 / 208 * money.exact("1.30"), "paisa", "250.01"),  # exactly 250.005
    (Fraction(-5, 1000), "paisa", "-0.01"),  # half away from zero, also below zero
    (Fraction(1, 3), "paisa", "0.33"),
    (Decimal("1799.50"), "rupee", "1800.00"),
    (Decimal("1799.01"), "rupee_up", "1800.00"),
    (Fraction(-1799_01, 100), "rupee_up", "-1799.00"),
    (Decimal("2.675"), "paisa", "2.68"),  # half-even would give 2.67
    (7, "paisa", "7.00"),
])
def test_round_money_rounds_once_half_away_from_zero(value: money.Exact, rule: str, expected: str) -> None:
    assert money.round_money(value, rule) == Decimal(expected)
    assert str(money.round_money(value, rule)) == expected


@given(st.integers(min_value=-10**12, max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_a_fraction_rounds_half_away_from_zero_exactly(numerator: int, denominator: int) -> None:
    # Independently: paise = floor(|n| * 100 / d + 1/2) in integers, with the sign put back.
    paise = (abs(numerator) * 200 + denominator) // (2 * denominator)
    expected = Decimal(paise if numerator >= 0 else -paise) / 100
    assert money.round_money(Fraction(numerator, denominator)) == expected


@pytest.mark.parametrize("bad", ["1.001", "NaN", "Infinity", "", "abc", True, None, [1]])
def test_parse_refuses_what_is_not_an_amount_in_paise(bad: object) -> None:
    with pytest.raises(ValueError):
        money.parse(bad)


def test_parse_paise_and_indian_grouping() -> None:
    assert money.parse("1071953.64") == Decimal("1071953.64")
    assert money.parse(12) == Decimal("12.00")
    assert money.to_paise(Decimal("1071953.64")) == 107195364
    assert money.from_paise(107195364) == Decimal("1071953.64")
    with pytest.raises(ValueError):
        money.to_paise(Decimal("0.001"))
    assert money.inr(Decimal("1071953.64")) == "10,71,953.64"
    assert money.inr(Decimal("-999.5")) == "-999.50"
    assert money.inr(None) == "0.00"
