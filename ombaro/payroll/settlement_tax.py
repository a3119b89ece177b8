"""Income tax on a full and final settlement (docs/payroll.md, "Tax on the settlement"): the exempt and
taxable parts of gratuity (Income-tax Act s.10(10)(ii), or (iii) for an employee the Payment of
Gratuity Act does not cover) and of leave encashment (s.10(10AA)(ii)), by
the dated rows in force on the last working day, and the TDS (s.192) on the taxable part: the year's
tax with it less the year's tax without it, on the monthly run's annual projection.

Pure: no database. Each limit is an exact numerator with one division, rounded once to the paisa.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ombaro.money import round_money
from ombaro.payroll.rates import GratuityExemption, IncomeTaxRegime, LeaveEncashmentExemption

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Part:
    """One terminal benefit split into its exempt and taxable parts, with the limits compared."""

    amount: Decimal
    exempt: Decimal
    limits: dict[str, Decimal]

    @property
    def taxable(self) -> Decimal:
        return self.amount - self.exempt

    def explain(self) -> dict[str, str]:
        return {"exempt": str(self.exempt), "taxable": str(self.taxable),
                **{name: str(value) for name, value in self.limits.items()}}


def gratuity_part(gratuity: Decimal, monthly_wage: Decimal, counted_years: int, rule: GratuityExemption) -> Part:
    """s.10(10)(ii): exempt up to the least of the gratuity, the ceiling and 15/26 of the last drawn
    monthly wage per completed year (a part year over six months counting: `counted_years`)."""
    formula = round_money(monthly_wage * rule.days_per_year * counted_years / rule.days_per_month)
    limits = {"ceiling": rule.ceiling, "fifteen_days_per_year": formula}
    return Part(gratuity, min(gratuity, *limits.values()), limits)


def uncovered_gratuity_part(gratuity: Decimal, monthly_salaries: Sequence[Decimal], completed_years: int,
                            rule: GratuityExemption) -> Part:
    """s.10(10)(iii) (an employee not covered by the Payment of Gratuity Act): exempt up to the least of
    the gratuity, the ceiling, and half a month's average salary per completed year (a part year not
    counting), the average being of the `uncovered_average_months` months before the month of leaving:
    `sum x months_per_year x years / average_months`, one division."""
    if len(monthly_salaries) != rule.uncovered_average_months:
        raise ValueError(f"need the salary of each of the {rule.uncovered_average_months} months before leaving")
    total = sum(monthly_salaries, ZERO)
    formula = round_money(total * rule.uncovered_months_per_year * completed_years / rule.uncovered_average_months)
    limits = {"ceiling": rule.ceiling, "half_month_average_salary_per_year": formula}
    return Part(gratuity, min(gratuity, *limits.values()), limits)


def encashment_part(encashment: Decimal, monthly_salaries: Sequence[Decimal], leave_days: Decimal,
                    completed_years: int, rule: LeaveEncashmentExemption) -> Part:
    """s.10(10AA)(ii): exempt up to the least of the amount, the ceiling, `average_months` times the
    average monthly salary of the last `average_months` months (their sum), and the cash equivalent of
    the leave, at most `days_per_year` a completed year, at the average salary / `day_divisor` a day."""
    if len(monthly_salaries) != rule.average_months:
        raise ValueError(f"need the salary of each of the last {rule.average_months} months")
    total = sum(monthly_salaries, ZERO)  # = average_months x the average: no division
    days = min(leave_days, rule.days_per_year * completed_years)
    cash_equivalent = round_money(days * total / (rule.average_months * rule.day_divisor))
    limits = {"ceiling": rule.ceiling, "average_salary_months": round_money(total),
              "leave_cash_equivalent": cash_equivalent}
    return Part(encashment, min(encashment, *limits.values()), limits)


def tds_on(taxable: Decimal, year_income: Decimal, regime: IncomeTaxRegime) -> tuple[Decimal, dict[str, Any]]:
    """s.192 on the settlement's taxable part: the year's tax on the projected income with it, less the
    tax without it (the monthly run deducts the latter), rounded once by the regime's rule."""
    without = regime.annual_tax(year_income - regime.standard_deduction)
    with_it = regime.annual_tax(year_income + taxable - regime.standard_deduction)
    tds = round_money(max(ZERO, with_it.total - without.total), regime.rounding)
    return tds, {"regime": regime.regime, "financial_year": regime.financial_year,
                 "year_income": str(year_income), "taxable_settlement": str(taxable),
                 "tax_without": str(round_money(without.total)), "tax_with": str(round_money(with_it.total)),
                 "tds": str(tds), "rates": regime.effective_from.isoformat()}
