"""One employee's pay for one month, from plain inputs: no database, no clock (docs/payroll.md).

Rounding (stated once, applied once): every earning is computed exactly and rounded to the paisa,
half-up, when it becomes a line (basic, each allowance, overtime); each statutory deduction is
rounded once by the rule its rate names (PF and TDS to the rupee half-up, ESI to the next rupee);
gross, total deductions and net are sums and a difference of those rounded lines, so
gross - total deductions = net to the paisa by construction.
"""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from ombaro.payroll.rates import COMPONENTS, HUNDRED, MissingRate, RateBook, round_money

ALLOWANCES = COMPONENTS[1:]
DEDUCTIONS = ("pf", "esi", "professional_tax", "tds", "loan_emi", "salary_advance")
ZERO = Decimal("0.00")
# numeric(10,2) and numeric(5,2) in salary_records: refuse one employee rather than fail a batch.
MAX_AMOUNT = Decimal("99999999.99")
MAX_HOURS = Decimal("999.99")


class PayrollComputationError(Exception):
    """This employee cannot be paid this month as the data stands; the reason says what to fix."""


class NoCompensation(PayrollComputationError):
    pass


class NegativeNet(PayrollComputationError):
    pass


@dataclass(frozen=True)
class Period:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 2000 <= self.year <= 2100:
            raise ValueError(f"not a payroll month: {self.year}-{self.month}")

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def end(self) -> dt.date:
        return dt.date(self.year, self.month, self.days)

    @property
    def index(self) -> int:
        """Months since year 0: consecutive months differ by one."""
        return self.year * 12 + self.month - 1

    @property
    def fy_start(self) -> dt.date:
        """1 April of the financial year this month belongs to."""
        return dt.date(self.year if self.month >= 4 else self.year - 1, 4, 1)

    @property
    def fy_end_index(self) -> int:
        return Period(self.fy_start.year + 1, 3).index

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), 12 if self.month == 1 else self.month - 1)

    def label(self) -> str:
        return f"{self.year}-{self.month:02d}"


@dataclass(frozen=True)
class Structure:
    """Monthly compensation in force from `effective_from`."""

    effective_from: dt.date
    basic: Decimal
    hra: Decimal = ZERO
    transport: Decimal = ZERO
    medical: Decimal = ZERO
    special: Decimal = ZERO
    other: Decimal = ZERO
    pf_applicable: bool = True
    esi_applicable: bool = True
    pt_state: str | None = None
    overtime_eligible: bool = True

    def monthly(self) -> dict[str, Decimal]:
        return {c: getattr(self, c) for c in COMPONENTS}

    def monthly_gross(self) -> Decimal:
        return sum(self.monthly().values(), ZERO)


@dataclass(frozen=True)
class PastMonth:
    """An earlier month's figures from the employee's salary record (any status)."""

    index: int  # Period.index
    gross: Decimal
    tds: Decimal = ZERO
    esi: Decimal = ZERO


@dataclass(frozen=True)
class History:
    """The employee's records of the twelve months before this one: the financial year so far (tax),
    the ESI contribution period (coverage) and a half-yearly professional-tax half year lie within."""

    months: tuple[PastMonth, ...] = ()

    def since(self, index: int) -> list[PastMonth]:
        return [m for m in self.months if m.index >= index]


@dataclass(frozen=True)
class EmployeeMonth:
    employee_id: uuid.UUID
    code: str
    name: str
    joining_date: dt.date
    last_working_date: dt.date | None
    structures: tuple[Structure, ...]
    lop: Mapping[dt.date, Decimal] = field(default_factory=dict)  # 1 absent / unpaid leave, 0.5 half day
    overtime: Mapping[dt.date, Decimal] = field(default_factory=dict)  # hours beyond the standard day
    gender: str | None = None
    department: str | None = None
    designation: str | None = None
    bonus: Decimal = ZERO
    loan_emi: Decimal = ZERO
    salary_advance: Decimal = ZERO
    history: History = History()


@dataclass(frozen=True)
class Payslip:
    employee_id: uuid.UUID
    period: Period
    earnings: dict[str, Decimal]  # basic, the allowances, overtime, bonus
    overtime_hours: Decimal
    deductions: dict[str, Decimal]
    paid_days: Decimal
    explanation: dict[str, Any]
    employer: dict[str, Decimal]

    @cached_property
    def gross(self) -> Decimal:
        return sum(self.earnings.values(), ZERO)

    @cached_property
    def total_deductions(self) -> Decimal:
        return sum(self.deductions.values(), ZERO)

    @cached_property
    def net(self) -> Decimal:
        return self.gross - self.total_deductions

    @property
    def lop_days(self) -> Decimal:
        return Decimal(self.period.days) - self.paid_days

    def record_values(self) -> dict[str, Any]:
        """The columns of `salary_records` (money in JSON as decimal strings: exact, not floats)."""
        return {
            "basic_salary": self.earnings["basic"],
            "allowances": {a: str(self.earnings[a]) for a in ALLOWANCES},
            "deductions": {d: str(self.deductions[d]) for d in DEDUCTIONS},
            "overtime_hours": self.overtime_hours,
            "overtime_amount": self.earnings["overtime"],
            "bonus": self.earnings["bonus"],
            "gross_salary": self.gross,
            "total_deductions": self.total_deductions,
            "net_salary": self.net,
        }


@dataclass(frozen=True)
class _Segment:
    start: dt.date
    end: dt.date
    structure: Structure

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def segments(structures: tuple[Structure, ...], start: dt.date, end: dt.date) -> list[_Segment]:
    """The parts of [start, end] each structure was in force for (a structure lasts until the next
    one starts); days before the first structure belong to none."""
    ordered = sorted(structures, key=lambda s: s.effective_from)
    found = []
    for i, structure in enumerate(ordered):
        until = ordered[i + 1].effective_from - dt.timedelta(days=1) if i + 1 < len(ordered) else end
        seg_start, seg_end = max(structure.effective_from, start), min(until, end)
        if seg_start <= seg_end:
            found.append(_Segment(seg_start, seg_end, structure))
    return found


def months_left_after(period: Period, last_working_date: dt.date | None) -> int:
    """Months of the financial year after this one that the employee is expected to be paid for."""
    last = period.fy_end_index
    if last_working_date is not None:
        last = min(last, Period(last_working_date.year, last_working_date.month).index)
    return max(0, last - period.index)


def _s(value: Decimal) -> str:
    return str(value)


def compute(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip:
    """The month's pay of one employee. Raises PayrollComputationError (or MissingRate) with the
    reason when the data does not allow it."""
    employed_from = max(period.start, employee.joining_date)
    employed_to = min(period.end, employee.last_working_date or period.end)
    if employed_from > employed_to:
        raise PayrollComputationError(f"not employed in {period.label()}")
    parts = segments(employee.structures, employed_from, employed_to)
    if not parts:
        raise NoCompensation(f"no compensation structure in force in {period.label()}")
    overtime_policy = book.overtime(period.start)
    days_in_month = Decimal(period.days)

    exact: dict[str, Decimal] = {c: Decimal(0) for c in COMPONENTS}
    overtime_exact, overtime_hours, paid_days = Decimal(0), ZERO, ZERO
    explained_segments = []
    for part in parts:
        lop = sum((w for d, w in employee.lop.items() if part.covers(d)), ZERO)
        paid = Decimal(part.days) - lop  # two decimals: days are whole or half
        for component, monthly in part.structure.monthly().items():
            exact[component] += monthly * paid / days_in_month
        hours, rate = ZERO, Decimal(0)
        if part.structure.overtime_eligible:
            hours = sum((h for d, h in employee.overtime.items() if part.covers(d)), ZERO)
            ordinary = sum((getattr(part.structure, c) for c in overtime_policy.basis), Decimal(0))
            rate = ordinary / overtime_policy.days_per_month / overtime_policy.standard_hours_per_day \
                * overtime_policy.multiplier
            overtime_exact += hours * rate
            overtime_hours += hours
        paid_days += paid
        explained_segments.append({
            "from": part.start.isoformat(), "to": part.end.isoformat(), "days": part.days, "lop_days": _s(lop),
            "paid_days": _s(paid), "structure_from": part.structure.effective_from.isoformat(),
            "monthly": {c: _s(v) for c, v in part.structure.monthly().items()},
            "overtime_hours": _s(hours), "overtime_hourly_rate": _s(round_money(rate)),
        })

    earnings = {c: round_money(v) for c, v in exact.items()}
    earnings["overtime"] = round_money(overtime_exact)
    earnings["bonus"] = round_money(employee.bonus)
    gross = sum(earnings.values(), ZERO)
    latest = parts[-1].structure  # flags and state in force at the end of the month's employment
    employer: dict[str, Decimal] = {}
    explanation: dict[str, Any] = {
        "rounding": "earnings to the paisa half-up; deductions by their rate's rule; totals are sums",
        "days_in_month": period.days,
        "employed": {"from": employed_from.isoformat(), "to": employed_to.isoformat()},
        "not_employed_days": period.days - ((employed_to - employed_from).days + 1),
        "uncovered_days": (employed_to - employed_from).days + 1 - sum(p.days for p in parts),
        "segments": explained_segments,
        "rates": {"overtime": overtime_policy.effective_from.isoformat()},
    }

    # Provident fund: 12% of the basic earned, the basic counted up to the wage ceiling.
    pf_amount = ZERO
    if latest.pf_applicable:
        pf = book.pf(period.start)
        wage = min(earnings["basic"], pf.wage_ceiling)
        pf_amount = round_money(wage * pf.employee_rate / HUNDRED, pf.rounding)
        eps = round_money(wage * pf.eps_rate / HUNDRED, pf.rounding)
        employer["pf_eps"] = eps
        employer["pf_epf"] = round_money(wage * pf.employer_rate / HUNDRED, pf.rounding) - eps
        explanation["pf"] = {"wage": _s(wage), "rate": _s(pf.employee_rate), "ceiling": _s(pf.wage_ceiling)}
        explanation["rates"]["pf"] = pf.effective_from.isoformat()

    # ESI: covered when the month's rate of wages (the structure's full-month gross, without overtime
    # or bonus) is within the threshold, or when ESI was deducted earlier in this contribution period
    # (coverage lasts to the period's end); the contribution is on the month's gross without bonus.
    esi_amount = ZERO
    if latest.esi_applicable:
        esi = book.esi(period.start)
        rate_of_wages = latest.monthly_gross()
        period_start = Period(*esi.period_start(period.year, period.month)).index
        continued = any(m.esi > 0 for m in employee.history.since(period_start))
        covered = rate_of_wages <= esi.wage_threshold or continued
        wage = gross - earnings["bonus"]
        if covered:
            esi_amount = round_money(wage * esi.employee_rate / HUNDRED, esi.rounding)
            employer["esi"] = round_money(wage * esi.employer_rate / HUNDRED, esi.rounding)
        explanation["esi"] = {"rate_of_wages": _s(rate_of_wages), "threshold": _s(esi.wage_threshold),
                              "covered": covered, "wage": _s(wage),
                              "continued_in_period": continued and rate_of_wages > esi.wage_threshold}
        explanation["rates"]["esi"] = esi.effective_from.isoformat()

    # Professional tax: the state's slab on the month's gross (half-yearly states: on the half
    # year's gross, in the months the state collects it).
    pt_amount = ZERO
    if latest.pt_state:
        pt = book.professional_tax(latest.pt_state, period.start)
        if pt.period == "monthly":
            base = gross
            pt_amount = pt.amount(base, employee.gender, february=period.month == 2)
        else:
            half_start = Period(*pt.half_year_start(period.year, period.month)).index
            base = sum((m.gross for m in employee.history.since(half_start)), ZERO) + gross
            if period.month in pt.deduct_in_months:
                pt_amount = pt.amount(base, employee.gender)
        pt_amount = round_money(pt_amount)
        explanation["professional_tax"] = {"state": pt.state, "period": pt.period, "base": _s(base)}
        explanation["rates"]["professional_tax"] = pt.effective_from.isoformat()

    # Income tax (TDS): the year's tax on projected income, less what was deducted, spread over
    # the months left including this one.
    regime = book.income_tax(period.fy_start)
    after = months_left_after(period, employee.last_working_date)
    this_year = employee.history.since(Period(period.fy_start.year, 4).index)
    gross_before = sum((m.gross for m in this_year), ZERO)
    tds_before = sum((m.tds for m in this_year), ZERO)
    projected = gross_before + gross + latest.monthly_gross() * after
    working = regime.annual_tax(projected - regime.standard_deduction)
    due = max(Decimal(0), working.total - tds_before)
    tds_amount = round_money(due / (after + 1), regime.rounding)
    explanation["tds"] = {
        "regime": regime.regime, "financial_year": regime.financial_year, "projected_income": _s(projected),
        "standard_deduction": _s(regime.standard_deduction), "taxable": _s(working.taxable),
        "annual_tax": _s(round_money(working.total)), "rebate": _s(round_money(working.rebate)),
        "gross_before": _s(gross_before), "tds_before": _s(tds_before), "months_left_after": after,
    }
    explanation["rates"]["income_tax"] = regime.effective_from.isoformat()

    deductions = {"pf": pf_amount, "esi": esi_amount, "professional_tax": pt_amount, "tds": tds_amount,
                  "loan_emi": round_money(employee.loan_emi), "salary_advance": round_money(employee.salary_advance)}
    payslip = Payslip(employee.employee_id, period, earnings, overtime_hours, deductions, paid_days, explanation,
                      employer)
    if payslip.net < 0:
        raise NegativeNet(f"deductions ({payslip.total_deductions}) exceed gross pay ({payslip.gross})")
    too_large = [k for k, v in (*earnings.items(), *deductions.items()) if v > MAX_AMOUNT]
    if too_large or payslip.gross > MAX_AMOUNT or overtime_hours > MAX_HOURS:
        raise PayrollComputationError(f"amounts beyond what a salary record holds: {too_large or 'gross or hours'}")
    return payslip


def compute_or_reason(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip | tuple[str, str]:
    """The payslip, or (error type, reason) for an employee the data does not let us pay."""
    try:
        return compute(employee, period, book)
    except (PayrollComputationError, MissingRate, ArithmeticError, ValueError) as exc:
        return type(exc).__name__, str(exc)
