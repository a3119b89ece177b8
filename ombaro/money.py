"""Money: rupees as `Decimal` with two places (paise). The one place for rounding, parsing,
converting to and from integer paise, and formatting.

Rules (docs/settlements.md, docs/payroll.md):
- A figure is computed exactly and rounded once, where it is stored: multiply before you divide,
  or compute with `fractions.Fraction` and hand the exact value to `round_money`.
- Rounding is half away from zero (`ROUND_HALF_UP`), never Python's half-to-even; the statutory
  rules that round otherwise name their step ("rupee", "rupee_up") and go through the same function.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

PAISA = Decimal("0.01")
RUPEE = Decimal("1")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")

# How an amount is rounded, once, where it is computed. Earnings and settlement lines use "paisa";
# statutory deductions name theirs in their data (EPFO and the TDS use whole rupees, ESIC the next
# rupee up).
ROUNDINGS: dict[str, tuple[Decimal, str]] = {
    "paisa": (PAISA, ROUND_HALF_UP),
    "rupee": (RUPEE, ROUND_HALF_UP),
    "rupee_up": (RUPEE, ROUND_CEILING),
}

Exact = Decimal | Fraction | int


def _exact_decimal(value: Fraction, step: Decimal, mode: str) -> Decimal:
    """A Fraction rounded to `step` without passing through a finite-precision quotient."""
    units = value / Fraction(step)  # how many steps, exactly
    if mode == ROUND_CEILING:
        return Decimal(-(-units.numerator // units.denominator)) * step
    whole, rest = divmod(abs(units.numerator), units.denominator)  # ROUND_HALF_UP: half away from zero
    whole += 1 if 2 * rest >= units.denominator else 0
    return Decimal(whole if units >= 0 else -whole) * step


def round_money(value: Exact, rule: str = "paisa") -> Decimal:
    """`value` rounded once by `rule`, always with two decimals (1800 is 1800.00). A `Fraction` is
    rounded exactly: 36500 * 2 / 208 * 15.99 is 5611.875 and becomes 5611.88."""
    if rule == "paisa" and type(value) is Decimal:  # the common case: one quantize (the second is a no-op)
        # The mode positional: the same call, without a keyword's cost (~20 roundings a payslip).
        return value.quantize(PAISA, ROUND_HALF_UP)
    step, mode = ROUNDINGS[rule]
    if isinstance(value, Fraction):
        return _exact_decimal(value, step, mode).quantize(PAISA)
    return Decimal(value).quantize(step, rounding=mode).quantize(PAISA)


def exact(value: Decimal | int | str) -> Fraction:
    """A decimal amount or rate as an exact fraction, to multiply and divide without rounding."""
    return Fraction(Decimal(value))


def parse(value: object) -> Decimal:
    """A JSON number or decimal string with at most two places, as rupees. More places, NaN,
    infinities and non-numbers are refused (ValueError), never rounded."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("not an amount") from exc
    if not amount.is_finite():
        raise ValueError("not an amount")
    if amount != amount.quantize(PAISA):
        raise ValueError("more than two decimal places")
    return amount.quantize(PAISA)


def to_paise(amount: Decimal) -> int:
    """Rupees (2 places) to integer paise, exactly; refuses anything finer than a paisa."""
    paise = amount * 100
    if paise != paise.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of paise")
    return int(paise)


def from_paise(paise: int) -> Decimal:
    return (Decimal(paise) / 100).quantize(PAISA, rounding=ROUND_HALF_UP)


def inr(amount: Decimal | str | None) -> str:
    """12,34,567.89: Indian digit grouping (lakhs, crores)."""
    value = Decimal(str(amount or 0)).quantize(PAISA)
    sign, (whole, paise) = ("-" if value < 0 else ""), f"{abs(value):.2f}".split(".")
    head, tail = whole[:-3], whole[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return sign + ",".join([*groups, tail]) + "." + paise
