"""One employee's pay for one month, from plain inputs: no database, no clock (docs/payroll.md).

Rounding (stated once, applied once): every figure is an exact numerator (sums and products of
decimals, exact in `Decimal`; a percentage divides by 100, which terminates) and at most one
division, the last step, and is rounded once by `ombaro.money.round_money`: earnings to the paisa
half away from zero when they become a line (basic, each allowance, overtime); each statutory
deduction by the rule its rate names (PF and TDS to the rupee, ESI to the next rupee). That one
division is correctly rounded to 28 digits: a quotient that is exactly a half paisa terminates and
comes out exact, and one that is not lies further from a half paisa than 28 digits can blur at these
magnitudes, so the rounding is the exact one (tests/payroll/test_law.py checks it against integer
arithmetic). Gross, total deductions and net are sums and a difference of the rounded lines, so
gross - total deductions = net to the paisa by construction. `compute` is its blocks in order:
earnings, PF, arrears (earlier approved months recomputed by the same two blocks), ESI, PT, TDS, the
recovery of a backdated cut, the deduction limit.
"""

from __future__ import annotations

import calendar
import datetime as dt
import operator
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple

from ombaro.money import HUNDRED, PAISA, round_money
from ombaro.payroll.rates import (
    COMPONENTS,
    DeductionLimit,
    ESIRate,
    IncomeTaxRegime,
    MissingRate,
    OvertimePolicy,
    PFRate,
    ProfessionalTax,
    RateBook,
)

ALLOWANCES = (*COMPONENTS[1:], "incentive", "arrears")  # salary_records.allowances keys
DEDUCTIONS = ("pf", "esi", "professional_tax", "tds", "loan_emi", "salary_advance", "cooperative_dues",
              "pf_arrears", "arrears_recovery")
# What arrears are computed on: the structure's components and overtime (its rate follows them), and
# the PF contributions on them (the employee's; the employer's EPS and EPF).
ARREARS_EARNINGS = (*COMPONENTS, "overtime")
ARREARS_PF = ("pf", "pf_eps", "pf_epf")
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

    @cached_property
    def start(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @cached_property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @cached_property
    def end(self) -> dt.date:
        return dt.date(self.year, self.month, self.days)

    @cached_property
    def index(self) -> int:
        """Months since year 0: consecutive months differ by one."""
        return self.year * 12 + self.month - 1

    @cached_property
    def fy_start(self) -> dt.date:
        """1 April of the financial year this month belongs to."""
        return dt.date(self.year if self.month >= 4 else self.year - 1, 4, 1)

    @cached_property
    def fy_start_index(self) -> int:
        return Period(self.fy_start.year, 4).index

    @cached_property
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

    def monthly(self) -> Mapping[str, Decimal]:
        """Each component's monthly amount (read-only: computed once per structure, as a payslip's
        explanation and its TDS and ESI blocks all ask for it)."""
        return self._monthly

    def monthly_gross(self) -> Decimal:
        return self._monthly_gross

    @cached_property
    def _monthly(self) -> Mapping[str, Decimal]:
        return MappingProxyType({c: getattr(self, c) for c in COMPONENTS})

    @cached_property
    def _monthly_gross(self) -> Decimal:
        return sum(self._monthly.values(), ZERO)


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
class TaxDeclaration:
    """The employee's declaration for the financial year (`tax_declarations`): the regime chosen,
    and income and TDS before this employer's payroll in the year (Form 12B from a previous
    employer, or this employer's pay before the engine paid them)."""

    regime: str = "new"
    previous_income: Decimal = ZERO
    previous_tds: Decimal = ZERO


@dataclass(frozen=True)
class ApprovedMonth:
    """An earlier month with an approved (processed or paid) record: what was paid for it so far,
    per arrears component (the record's line plus arrears already recorded for it elsewhere), and
    the incentive and bonus it paid (they enter its PF wage)."""

    period: Period
    paid: Mapping[str, Decimal]  # ARREARS_EARNINGS and ARREARS_PF keys
    incentive: Decimal = ZERO
    bonus: Decimal = ZERO


@dataclass(frozen=True)
class ArrearsLine:
    """What this month pays (negative: recovers) for `period`'s `component`."""

    period: Period
    component: str
    amount: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"month": self.period.label(), "component": self.component, "amount": str(self.amount)}


@dataclass(frozen=True)
class EmployeeMonth:
    employee_id: uuid.UUID
    code: str
    name: str
    joining_date: dt.date
    last_working_date: dt.date | None
    structures: tuple[Structure, ...]
    # Per day: 1 absent / unpaid leave, 0.5 half day; overtime: hours beyond the standard day. Only
    # ever summed over a part's days (`_earnings`), so a value may also be the sum of a span of days
    # lying within one part, keyed by one of its days (the run's loader sends such sums).
    lop: Mapping[dt.date, Decimal] = field(default_factory=dict)
    overtime: Mapping[dt.date, Decimal] = field(default_factory=dict)
    gender: str | None = None
    department: str | None = None
    designation: str | None = None
    bonus: Decimal = ZERO  # the annual bonus (not a wage for ESI or PF)
    incentive: Decimal = ZERO  # a monthly incentive: a wage like any allowance
    loan_emi: Decimal = ZERO
    salary_advance: Decimal = ZERO
    cooperative_dues: Decimal = ZERO
    history: History = History()
    tax: TaxDeclaration | None = None  # None: nothing declared for this financial year
    # Earlier approved months a compensation change may have been backdated into (their attendance
    # is in `lop` and `overtime` too): the difference is paid, or recovered, as arrears.
    approved: tuple[ApprovedMonth, ...] = ()


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
    hold_reason: str | None = None  # deductions beyond the Payment of Wages Act limit: not to be paid
    arrears: tuple[ArrearsLine, ...] = ()  # the lines this record pays (or recovers) for earlier months

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
            "status": "hold" if self.hold_reason else "pending",
            "notes": f"held: {self.hold_reason}" if self.hold_reason else None,
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


class _Segment(NamedTuple):  # a tuple: one is built per employee and month
    start: dt.date
    end: dt.date
    structure: Structure

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


_effective_from = operator.attrgetter("effective_from")


def segments(structures: tuple[Structure, ...], start: dt.date, end: dt.date) -> list[_Segment]:
    """The parts of [start, end] each structure was in force for (a structure lasts until the next
    one starts); days before the first structure belong to none."""
    ordered = sorted(structures, key=_effective_from)
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


_s = str  # a figure in the explanation: its exact decimal text


def _percent(amount: Decimal, rate: Decimal) -> Decimal:
    """`rate`% of `amount`, exactly (dividing by 100 terminates)."""
    return amount * rate / HUNDRED


class MonthRates:
    """The rates in force in one month and what follows from them alone, looked up once per rate book
    and month and shared by every employee's computation (`month_rates`). Each is looked up when first
    asked for, and a missing one is not kept: an employee who needs no PF rate, say, never fails on its
    absence, and every one who does fails with the same MissingRate."""

    def __init__(self, book: RateBook, period: Period) -> None:
        self.book, self.period = book, period
        self._income_tax: dict[str, IncomeTaxRegime] = {}
        self._professional_tax: dict[str, ProfessionalTax] = {}
        self._pt_half_year_start: dict[str, int] = {}

    @cached_property
    def overtime(self) -> OvertimePolicy:
        return self.book.overtime(self.period.start)

    @cached_property
    def overtime_divisor(self) -> Decimal:
        """Days per month x hours per day: the divisor of the ordinary rate of wages."""
        return self.overtime.days_per_month * self.overtime.standard_hours_per_day

    @cached_property
    def pf(self) -> PFRate:
        return self.book.pf(self.period.start)

    @cached_property
    def esi(self) -> ESIRate:
        return self.book.esi(self.period.start)

    @cached_property
    def esi_period_start(self) -> int:
        """Period.index of the month the ESI contribution period containing this month starts in."""
        return Period(*self.esi.period_start(self.period.year, self.period.month)).index

    @cached_property
    def deduction_limit(self) -> DeductionLimit:
        return self.book.deduction_limit(self.period.start)

    def income_tax(self, regime: str) -> IncomeTaxRegime:
        """The regime's rates for the financial year this month belongs to."""
        if regime not in self._income_tax:
            self._income_tax[regime] = self.book.income_tax(self.period.fy_start, regime)
        return self._income_tax[regime]

    def professional_tax(self, state: str) -> ProfessionalTax:
        if state not in self._professional_tax:
            self._professional_tax[state] = self.book.professional_tax(state, self.period.start)
        return self._professional_tax[state]

    def pt_half_year_start(self, state: str) -> int:
        """Period.index of the month the state's professional-tax half year containing this month starts in."""
        if state not in self._pt_half_year_start:
            pt = self.professional_tax(state)
            self._pt_half_year_start[state] = Period(*pt.half_year_start(self.period.year, self.period.month)).index
        return self._pt_half_year_start[state]


def month_rates(book: RateBook, period: Period) -> MonthRates:
    """The book's MonthRates for `period`, kept on the book (which never changes once read)."""
    rates = book.per_month.get(period)
    if rates is None:
        rates = book.per_month[period] = MonthRates(book, period)
    return rates


@dataclass
class _Working:
    """What the blocks of one computation share: the lines so far and their explanation."""

    employee: EmployeeMonth
    period: Period
    book: RateBook
    rates: MonthRates  # the book's rates for `period`
    parts: list[_Segment]
    latest: Structure  # flags and state in force at the end of the month's employment: parts[-1]'s
    earnings: dict[str, Decimal] = field(default_factory=dict)
    deductions: dict[str, Decimal] = field(default_factory=dict)
    employer: dict[str, Decimal] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)
    overtime_hours: Decimal = ZERO
    paid_days: Decimal = ZERO
    gross: Decimal = ZERO  # set with the earnings
    arrears_due: list[ArrearsLine] = field(default_factory=list)  # every difference found
    arrears_paid: list[ArrearsLine] = field(default_factory=list)  # what this month pays or recovers of them


def _earnings(w: _Working) -> None:
    """Each component: (sum over segments of monthly x paid days) / days in the month; overtime: (sum
    of hours x multiplier x the ordinary rate of wages) / (days per month x hours per day). Exact
    numerators, one division each, rounded once."""
    policy = w.rates.overtime
    per_hour = w.rates.overtime_divisor  # the divisor of the ordinary rate
    lines: dict[str, Decimal] = dict.fromkeys(COMPONENTS, Decimal(0))
    overtime, days = Decimal(0), w.period.days
    explained = []
    for part in w.parts:
        start, end = part.start, part.end  # part.covers(day), inline: a day's test is most of this loop
        lop = sum((d for day, d in w.employee.lop.items() if start <= day <= end), ZERO)
        paid = Decimal(part.days) - lop  # two decimals: days are whole or half
        monthly_lines = part.structure.monthly()
        for component, monthly in monthly_lines.items():
            lines[component] += monthly * paid
        hours, ordinary = ZERO, Decimal(0)
        if part.structure.overtime_eligible:
            hours = sum((h for day, h in w.employee.overtime.items() if start <= day <= end), ZERO)
            ordinary = sum((monthly_lines[c] for c in policy.basis), Decimal(0))
            overtime += hours * policy.multiplier * ordinary
            w.overtime_hours += hours
        w.paid_days += paid
        explained.append({
            "from": part.start.isoformat(), "to": part.end.isoformat(), "days": part.days, "lop_days": _s(lop),
            "paid_days": _s(paid), "structure_from": part.structure.effective_from.isoformat(),
            "monthly": {c: _s(v) for c, v in monthly_lines.items()},
            "overtime_hours": _s(hours),
            "overtime_hourly_rate": _s(round_money(ordinary * policy.multiplier / per_hour)),  # shown, not used
        })
    w.earnings = {c: round_money(v / days) for c, v in lines.items()}
    w.earnings["incentive"] = round_money(w.employee.incentive)
    w.earnings["overtime"] = round_money(overtime / per_hour)
    w.earnings["bonus"] = round_money(w.employee.bonus)
    w.gross = sum(w.earnings.values(), ZERO)
    w.explanation["segments"] = explained  # the policy (basis, multiplier, divisors) is the rate row of that date
    w.explanation["rates"]["overtime"] = policy.effective_from.isoformat()


def pf_wage(w: dict[str, Decimal], definition: str, components: tuple[str, ...], excluded: tuple[str, ...],
            limit: Decimal) -> Decimal:
    """The month's PF wage from its earned lines (before the ceiling), exactly; see rates.PFRate."""
    if definition == "components":
        return sum((w[c] for c in components), ZERO)
    remuneration = sum(w.values(), ZERO)
    left_out = sum((w[c] for c in (*excluded, "overtime", "bonus")), ZERO)
    return remuneration - left_out + max(ZERO, left_out - _percent(remuneration, limit))


def _pf(w: _Working) -> None:
    """EPF: the employee's and employer's rate of the PF wage (up to the ceiling when capped); the
    pension (EPS) part always on wages up to the ceiling."""
    w.deductions["pf"] = ZERO
    if not w.latest.pf_applicable:
        return
    pf = w.rates.pf
    wage = pf_wage(w.earnings, pf.definition, pf.wage_components, pf.excluded, pf.excluded_limit)
    ceiling = pf.wage_ceiling
    contributory = min(wage, ceiling) if pf.cap_wages else wage
    w.deductions["pf"] = round_money(_percent(contributory, pf.employee_rate), pf.rounding)
    eps = round_money(_percent(min(wage, ceiling), pf.eps_rate), pf.rounding)
    w.employer["pf_eps"] = eps
    w.employer["pf_epf"] = round_money(_percent(contributory, pf.employer_rate), pf.rounding) - eps
    w.explanation["pf"] = {"pf_wage": _s(wage), "wage": _s(contributory), "rate": _s(pf.employee_rate),
                           "ceiling": _s(pf.wage_ceiling)}
    w.explanation["rates"]["pf"] = pf.effective_from.isoformat()


def _esi(w: _Working) -> None:
    """ESI: covered when the rate of wages (the structure's full-month gross) is within the threshold,
    or when ESI was deducted earlier in this contribution period; on the month's wages (everything
    but the annual bonus). No employee's share when the average daily wage is within the exemption."""
    w.deductions["esi"] = ZERO
    if not w.latest.esi_applicable:
        return
    esi = w.rates.esi
    rate_of_wages = w.latest.monthly_gross()
    continued = any(m.esi > 0 for m in w.employee.history.since(w.rates.esi_period_start))
    covered = rate_of_wages <= esi.wage_threshold or continued
    wage = w.gross - w.earnings["bonus"]
    # average daily wage = wage / paid days <= the limit, compared without dividing
    exempt = esi.employee_exempt_daily_wage is not None and wage <= esi.employee_exempt_daily_wage * w.paid_days
    if covered:
        if not exempt:
            w.deductions["esi"] = round_money(_percent(wage, esi.employee_rate), esi.rounding)
        w.employer["esi"] = round_money(_percent(wage, esi.employer_rate), esi.rounding)
    w.explanation["esi"] = {"rate_of_wages": _s(rate_of_wages), "threshold": _s(esi.wage_threshold),
                            "covered": covered, "wage": _s(wage),
                            "continued_in_period": continued and rate_of_wages > esi.wage_threshold}
    if covered:
        w.explanation["esi"]["employee_share_exempt"] = exempt
        w.explanation["esi"]["average_daily_wage"] = _s(round_money(wage / w.paid_days) if w.paid_days else ZERO)
    w.explanation["rates"]["esi"] = esi.effective_from.isoformat()


def _professional_tax(w: _Working) -> None:
    """The state's slab on the month's gross (half-yearly states: on the half year's gross, in the
    months the state collects it)."""
    w.deductions["professional_tax"] = ZERO
    if not w.latest.pt_state:
        return
    pt = w.rates.professional_tax(w.latest.pt_state)
    amount = ZERO
    if pt.period == "monthly":
        base = w.gross
        amount = pt.amount(base, w.employee.gender, february=w.period.month == 2)
    else:
        half_start = w.rates.pt_half_year_start(w.latest.pt_state)
        base = sum((m.gross for m in w.employee.history.since(half_start)), ZERO) + w.gross
        if w.period.month in pt.deduct_in_months:
            amount = pt.amount(base, w.employee.gender)
    w.deductions["professional_tax"] = round_money(amount)
    w.explanation["professional_tax"] = {"state": pt.state, "period": pt.period, "base": _s(base)}
    w.explanation["rates"]["professional_tax"] = pt.effective_from.isoformat()


def _tds(w: _Working) -> None:
    """Section 192: the year's tax on the projected income of the financial year, less what was
    deducted, spread over the months left including this one. Projected income = declared income
    before this payroll (Form 12B) + this FY's records + months employed here without a record
    (estimated at the current structure, unless a declaration covers them) + this month + the
    current structure for the months left."""
    employee, period = w.employee, w.period
    declared = employee.tax
    regime = w.rates.income_tax(declared.regime if declared else "new")
    after = months_left_after(period, employee.last_working_date)
    fy_first = period.fy_start_index
    this_year = employee.history.since(fy_first)
    recorded = {m.index for m in this_year}
    joined = employee.joining_date.year * 12 + employee.joining_date.month - 1  # as Period.index, any year
    employed_from = max(fy_first, joined)
    missing = [i for i in range(employed_from, period.index) if i not in recorded]
    estimated = w.latest.monthly_gross() * len(missing) if declared is None else ZERO
    previous_income = declared.previous_income if declared else ZERO
    previous_tds = declared.previous_tds if declared else ZERO
    gross_before = sum((m.gross for m in this_year), ZERO)
    tds_before = previous_tds + sum((m.tds for m in this_year), ZERO)
    projected = previous_income + gross_before + estimated + w.gross + w.latest.monthly_gross() * after
    working = regime.annual_tax(projected - regime.standard_deduction)
    # Arrears are income of the month paid and taxed in it whole: the tax they add is deducted now,
    # the rest of the year's tax is spread over the months left as usual.
    arrears = w.earnings.get("arrears", ZERO)
    regular = regime.annual_tax(projected - arrears - regime.standard_deduction) if arrears else working
    regular_due = max(Decimal(0), regular.total - tds_before)
    arrears_tax = max(Decimal(0), working.total - tds_before) - regular_due
    w.deductions["tds"] = round_money((regular_due + arrears_tax * (after + 1)) / (after + 1), regime.rounding)
    w.explanation["tds"] = {
        "regime": regime.regime, "financial_year": regime.financial_year, "projected_income": _s(projected),
        "standard_deduction": _s(regime.standard_deduction), "taxable": _s(working.taxable),
        "annual_tax": _s(round_money(working.total)), "rebate": _s(round_money(working.rebate)),
        "gross_before": _s(gross_before), "tds_before": _s(tds_before), "months_left_after": after,
    }
    if declared:  # Form 12B: in the projection and in tds_before
        w.explanation["tds"].update(previous_income=_s(previous_income), previous_tds=_s(previous_tds))
    if arrears:
        w.explanation["tds"]["tax_on_arrears"] = _s(round_money(arrears_tax))
    if missing:  # earlier months employed here without a record (estimated unless declared)
        w.explanation["tds"].update(months_without_record=len(missing), estimated_for_them=_s(estimated))
    w.explanation["rates"]["income_tax"] = regime.effective_from.isoformat()


def _deduction_limit(w: _Working) -> str | None:
    """Payment of Wages Act s.7(3): the reason to hold the record when its deductions exceed the
    limit (of the wages: everything but the annual bonus), else None."""
    limit = w.rates.deduction_limit
    cooperative = w.deductions["cooperative_dues"] > 0
    percent = limit.percent_with_cooperative if cooperative else limit.percent
    wages = w.gross - w.earnings["bonus"]
    total = sum(w.deductions.values(), ZERO)
    w.explanation["rates"]["wage_deductions"] = limit.effective_from.isoformat()
    if total * HUNDRED <= wages * percent:
        return None
    w.explanation["deduction_limit"] = {"wages": _s(wages), "percent": _s(percent), "deductions": _s(total)}
    return (f"deductions {total} exceed {percent}% of wages {wages} (Payment of Wages Act s.7(3)"
            f"{', with co-operative society dues' if cooperative else ''})")


def _working(employee: EmployeeMonth, period: Period, book: RateBook) -> _Working:
    employed_from = max(period.start, employee.joining_date)
    employed_to = min(period.end, employee.last_working_date or period.end)
    if employed_from > employed_to:
        raise PayrollComputationError(f"not employed in {period.label()}")
    parts = segments(employee.structures, employed_from, employed_to)
    if not parts:
        raise NoCompensation(f"no compensation structure in force in {period.label()}")
    return _Working(employee, period, book, month_rates(book, period), parts, parts[-1].structure, explanation={
        "rounding": "earnings to the paisa half-up; deductions by their rate's rule; totals are sums",
        "days_in_month": period.days,
        "employed": {"from": employed_from.isoformat(), "to": employed_to.isoformat()},
        "not_employed_days": period.days - ((employed_to - employed_from).days + 1),
        "uncovered_days": (employed_to - employed_from).days + 1 - sum(p.days for p in parts),
        "rates": {},
    })


def month_earned(employee: EmployeeMonth, period: Period, book: RateBook) -> tuple[dict[str, Decimal],
                                                                                   dict[str, Decimal]]:
    """A month's earnings and PF (the employee's, the employer's EPS and EPF) as the data now stands,
    by the same blocks as `compute`: what an approved month should have paid."""
    w = _working(employee, period, book)
    _earnings(w)
    _pf(w)
    return w.earnings, {"pf": w.deductions["pf"], "pf_eps": w.employer.get("pf_eps", ZERO),
                        "pf_epf": w.employer.get("pf_epf", ZERO)}


def arrears_due(employee: EmployeeMonth, book: RateBook) -> list[ArrearsLine]:
    """Per approved month (oldest first) and component: what the month earns now less what was paid
    for it. Earnings both ways (a backdated cut is negative); PF only upwards (PF the law took on
    wages since cut is not given back through pay), each month at its own rates and ceiling."""
    lines = []
    for month in sorted(employee.approved, key=lambda m: m.period.index):
        as_paid = replace(employee, incentive=month.incentive, bonus=month.bonus, approved=())
        try:
            earnings, pf = month_earned(as_paid, month.period, book)
        except (PayrollComputationError, MissingRate) as exc:
            raise PayrollComputationError(f"arrears for {month.period.label()}: {exc}") from exc
        for component in ARREARS_EARNINGS:
            difference = earnings[component] - month.paid.get(component, ZERO)
            if difference:
                lines.append(ArrearsLine(month.period, component, difference))
        for component in ARREARS_PF:
            difference = pf[component] - month.paid.get(component, ZERO)
            if difference > 0:
                lines.append(ArrearsLine(month.period, component, difference))
    return lines


def _arrears(w: _Working) -> None:
    """Arrears of earnings in this month's gross (a net shortfall is recovered later, in
    `_arrears_recovery`), and PF on arrears of PF wages as its own deduction and employer lines."""
    w.arrears_due = arrears_due(w.employee, w.book)
    earned = sum((a.amount for a in w.arrears_due if a.component in ARREARS_EARNINGS), ZERO)
    w.earnings["arrears"] = max(ZERO, earned)
    w.gross = sum(w.earnings.values(), ZERO)
    pf = dict.fromkeys(ARREARS_PF, ZERO)
    for line in w.arrears_due:
        if line.component in pf:
            pf[line.component] += line.amount
    w.deductions["pf_arrears"] = pf["pf"]
    if pf["pf_eps"] or pf["pf_epf"]:
        w.employer["pf_arrears_eps"] = pf["pf_eps"]
        w.employer["pf_arrears_epf"] = pf["pf_epf"]


def _arrears_recovery(w: _Working) -> None:
    """A net shortfall (a backdated cut) is recovered as a deduction within what the Payment of Wages
    Act s.7(3) limit leaves after the month's other deductions; the rest stays owed and the next run
    finds it again (only the lines recovered are recorded, oldest month first)."""
    w.deductions["arrears_recovery"] = ZERO
    earned = sum((a.amount for a in w.arrears_due if a.component in ARREARS_EARNINGS), ZERO)
    if earned >= 0:
        w.arrears_paid = list(w.arrears_due)
        return
    limit = w.rates.deduction_limit
    percent = limit.percent_with_cooperative if w.deductions["cooperative_dues"] > 0 else limit.percent
    room_exact = _percent(w.gross - w.earnings["bonus"], percent) - sum(w.deductions.values(), ZERO)
    room = round_money(room_exact)
    room -= PAISA if room > room_exact else ZERO  # never past the limit
    recovered = min(-earned, max(ZERO, room))
    w.deductions["arrears_recovery"] = recovered
    left = recovered + sum((a.amount for a in w.arrears_due if a.component in ARREARS_EARNINGS and a.amount > 0),
                           ZERO)
    for line in w.arrears_due:
        if line.component in ARREARS_EARNINGS and line.amount < 0:
            taken = min(-line.amount, left)
            left -= taken
            if taken:
                w.arrears_paid.append(ArrearsLine(line.period, line.component, -taken))
        else:
            w.arrears_paid.append(line)
    if recovered < -earned:
        w.explanation["arrears_recovery_deferred"] = _s(-earned - recovered)


def compute(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip:
    """The month's pay of one employee. Raises PayrollComputationError (or MissingRate) with the
    reason when the data does not allow it; a payslip whose deductions exceed the legal limit comes
    back with its `hold_reason`."""
    w = _working(employee, period, book)
    _earnings(w)
    _pf(w)
    _arrears(w)
    _esi(w)
    _professional_tax(w)
    _tds(w)
    for kind in ("loan_emi", "salary_advance", "cooperative_dues"):
        w.deductions[kind] = round_money(getattr(employee, kind))
    _arrears_recovery(w)
    if w.arrears_paid:
        w.explanation["arrears"] = [a.as_dict() for a in w.arrears_paid]
    deductions = {d: w.deductions[d] for d in DEDUCTIONS}
    payslip = Payslip(employee.employee_id, period, w.earnings, w.overtime_hours, deductions, w.paid_days,
                      w.explanation, w.employer, _deduction_limit(w), tuple(w.arrears_paid))
    if payslip.net < 0:
        raise NegativeNet(f"deductions ({payslip.total_deductions}) exceed gross pay ({payslip.gross})")
    if max(*w.earnings.values(), *deductions.values()) > MAX_AMOUNT or payslip.gross > MAX_AMOUNT \
            or w.overtime_hours > MAX_HOURS:
        too_large = [k for k, v in (*w.earnings.items(), *deductions.items()) if v > MAX_AMOUNT]
        raise PayrollComputationError(f"amounts beyond what a salary record holds: {too_large or 'gross or hours'}")
    return payslip


def compute_or_reason(employee: EmployeeMonth, period: Period, book: RateBook) -> Payslip | tuple[str, str]:
    """The payslip, or (error type, reason) for an employee the data does not let us pay."""
    try:
        return compute(employee, period, book)
    except (PayrollComputationError, MissingRate, ArithmeticError, ValueError) as exc:
        return type(exc).__name__, str(exc)
