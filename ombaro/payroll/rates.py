"""Statutory rates, slabs and the company's attendance and overtime policy, read from the
effective-dated rows of `statutory_rates` (docs/payroll.md, "Statutory data").

A row is in force from its `effective_from` until the next row of the same kind and scope, so next
year's budget is a new row, not a code change. `data` is JSON whose numbers are decimal strings.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.models.payroll import StatutoryRate
from ombaro.money import HUNDRED, PAISA, ROUNDINGS, RUPEE, round_money  # noqa: F401 (imported from here)


class MissingRate(LookupError):
    """No row of this kind and scope is in force on the date asked."""


class BadRate(ValueError):
    """A row's data does not read as its kind requires."""


@dataclass(frozen=True)
class Slab:
    over: Decimal  # applies to amounts strictly greater than this
    amount: Decimal
    february: Decimal | None = None


@dataclass(frozen=True)
class RateSlab:
    over: Decimal
    rate: Decimal  # percent


class _Bounded(Protocol):
    @property
    def over(self) -> Decimal: ...


B = TypeVar("B", bound=_Bounded)


def pick(slabs: Sequence[B], amount: Decimal) -> B | None:
    """The highest slab (or rate band) whose lower bound `amount` exceeds (sorted by `over`)."""
    chosen = None
    for slab in slabs:
        if amount > slab.over:
            chosen = slab
    return chosen


COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other")
# Earnings that are not components of the structure: HR's monthly incentive (a wage for ESI and PF),
# overtime, and the annual bonus.
EXTRA_EARNINGS = ("incentive", "overtime", "bonus")
PF_DEFINITIONS = ("components", "code_2020")


@dataclass(frozen=True)
class PFRate:
    """EPF contributions and the wage they are on. `definition` says what the PF wage is:
    "components": the sum of the earned `wage_components` (EPF Act s.2(b) "basic wages" as the
    Supreme Court read it in 2019: allowances paid to everyone across the board count);
    "code_2020": Code on Social Security 2020 s.2(88): all remuneration except `excluded`
    (plus bonus and overtime), and whatever the exclusions add up to beyond `excluded_limit`% of all
    remuneration counts as wages again. `cap_wages`: contributions on wages up to `wage_ceiling`."""

    effective_from: dt.date
    employee_rate: Decimal
    employer_rate: Decimal
    eps_rate: Decimal
    wage_ceiling: Decimal
    rounding: str
    definition: str = "components"
    wage_components: tuple[str, ...] = ("basic",)
    excluded: tuple[str, ...] = ()
    excluded_limit: Decimal = Decimal(50)
    cap_wages: bool = True


@dataclass(frozen=True)
class ESIRate:
    effective_from: dt.date
    employee_rate: Decimal
    employer_rate: Decimal
    wage_threshold: Decimal
    rounding: str
    contribution_periods_start: tuple[int, ...]
    # ESI (Central) Rules r.51 / s.42: no employee's share when the average daily wage is within this.
    employee_exempt_daily_wage: Decimal | None = None

    def period_start(self, year: int, month: int) -> tuple[int, int]:
        """(year, month) the ESI contribution period containing this month starts in."""
        starts = sorted(self.contribution_periods_start)
        earlier = [m for m in starts if m <= month]
        return (year, earlier[-1]) if earlier else (year - 1, starts[-1])


@dataclass(frozen=True)
class ProfessionalTax:
    state: str
    effective_from: dt.date
    period: str  # 'monthly' or 'half_yearly'
    slabs: tuple[Slab, ...]
    slabs_female: tuple[Slab, ...] | None
    half_years_start: tuple[int, ...] = (4, 10)
    deduct_in_months: tuple[int, ...] = ()

    def slabs_for(self, gender: str | None) -> tuple[Slab, ...]:
        return self.slabs_female if gender == "female" and self.slabs_female else self.slabs

    def amount(self, base: Decimal, gender: str | None, *, february: bool = False) -> Decimal:
        """The slab's tax on `base` (a month's or a half year's gross); some states take more in February."""
        slab = pick(self.slabs_for(gender), base)
        if slab is None:
            return Decimal("0.00")
        return slab.february if february and slab.february is not None else slab.amount

    def half_year_start(self, year: int, month: int) -> tuple[int, int]:
        starts = sorted(self.half_years_start)
        earlier = [m for m in starts if m <= month]
        return (year, earlier[-1]) if earlier else (year - 1, starts[-1])


@dataclass(frozen=True)
class TaxWorking:
    taxable: Decimal
    slab_tax: Decimal
    rebate: Decimal
    tax_after_rebate: Decimal
    surcharge: Decimal
    cess: Decimal

    @property
    def total(self) -> Decimal:
        return self.tax_after_rebate + self.surcharge + self.cess


@dataclass(frozen=True)
class IncomeTaxRegime:
    regime: str
    effective_from: dt.date
    financial_year: str
    standard_deduction: Decimal
    slabs: tuple[RateSlab, ...]
    rebate_upto: Decimal
    rebate_max: Decimal
    marginal_relief: bool
    surcharge: tuple[RateSlab, ...]
    cess_rate: Decimal
    rounding: str

    @cached_property
    def _slab_overs(self) -> list[Decimal]:
        return [s.over for s in self.slabs]

    @cached_property
    def _tax_below(self) -> tuple[Decimal, ...]:
        """The tax on the slabs below each slab, summed slab by slab from Decimal(0) as `slab_tax`
        would (the same additions in the same order, so the same figure): once per regime."""
        below: list[Decimal] = []
        tax = Decimal(0)
        for slab, upper in zip(self.slabs[:-1], self._slab_overs[1:], strict=True):
            below.append(tax)
            tax += (upper - slab.over) * slab.rate / HUNDRED
        return (*below, tax)

    def slab_tax(self, income: Decimal) -> Decimal:
        """The sum over the slabs below `income` of the part of it in each, at the slab's rate."""
        top = bisect.bisect_left(self._slab_overs, income) - 1  # the highest slab `income` exceeds the start of
        if top < 0:
            return Decimal(0)
        slab = self.slabs[top]
        return self._tax_below[top] + (income - slab.over) * slab.rate / HUNDRED

    def _after_rebate(self, income: Decimal, tax: Decimal) -> tuple[Decimal, Decimal]:
        """(rebate, tax after it): section 87A, with the new regime's marginal relief above the limit."""
        if income <= self.rebate_upto:
            rebate = min(tax, self.rebate_max)
            return rebate, tax - rebate
        if self.marginal_relief and tax > income - self.rebate_upto:
            return tax - (income - self.rebate_upto), income - self.rebate_upto
        return Decimal(0), tax

    def _surcharged(self, income: Decimal, slab_tax: Decimal | None = None) -> tuple[Decimal, Decimal]:
        """(tax after rebate, surcharge) with marginal relief: crossing a surcharge threshold never
        costs more than the income above it. `slab_tax`: the slab tax on `income`, when known."""
        _, tax = self._after_rebate(income, self.slab_tax(income) if slab_tax is None else slab_tax)
        band = pick(self.surcharge, income)
        if band is None:
            return tax, Decimal(0)
        surcharge = tax * band.rate / HUNDRED
        below_tax, below_surcharge = self._surcharged(band.over)
        ceiling = below_tax + below_surcharge + (income - band.over)
        return tax, max(Decimal(0), min(surcharge, ceiling - tax))

    def annual_tax(self, taxable: Decimal) -> TaxWorking:
        taxable = max(Decimal(0), taxable)
        slab_tax = self.slab_tax(taxable)
        rebate, _ = self._after_rebate(taxable, slab_tax)
        tax, surcharge = self._surcharged(taxable, slab_tax)
        cess = (tax + surcharge) * self.cess_rate / HUNDRED
        return TaxWorking(taxable, slab_tax, rebate, tax, surcharge, cess)


@dataclass(frozen=True)
class OvertimePolicy:
    effective_from: dt.date
    standard_hours_per_day: Decimal
    multiplier: Decimal
    basis: tuple[str, ...]  # components making the ordinary rate of wages (default: all, s.59(2))
    days_per_month: Decimal


@dataclass(frozen=True)
class DeductionLimit:
    """Payment of Wages Act s.7(3): total deductions of a wage period at most `percent`% of the wages,
    `percent_with_cooperative`% when any of them is paid to a co-operative society."""

    effective_from: dt.date
    percent: Decimal
    percent_with_cooperative: Decimal


@dataclass(frozen=True)
class AttendancePolicy:
    effective_from: dt.date
    day_start: dt.time
    grace_minutes: int
    half_day_below_hours: Decimal
    weekly_offs: tuple[int, ...]  # Python weekdays: Monday 0 ... Sunday 6

    @property
    def late_after(self) -> dt.time:
        start = dt.datetime.combine(dt.date(2000, 1, 1), self.day_start)
        return (start + dt.timedelta(minutes=self.grace_minutes)).time()


@dataclass(frozen=True)
class GratuityRule:
    """Payment of Gratuity Act s.4: `days_per_year` (15) days' wages of the last monthly `wage_components`
    (basic and dearness allowance) per counted year of service, the monthly wage over `days_per_month`
    (26, s.4(2)); payable after `min_years` (5) of continuous service, a last year of at least
    `last_year_days` (240, s.2A(2)) counting as one; at most `ceiling` (s.4(3))."""

    effective_from: dt.date
    days_per_year: Decimal
    days_per_month: Decimal
    wage_components: tuple[str, ...]
    min_years: int
    last_year_days: int
    ceiling: Decimal


@dataclass(frozen=True)
class SeparationPolicy:
    """The company's full-and-final policy: earned leave encashed at the monthly `encashment_components`
    over `encashment_divisor` a day (at most `encashment_max_days`); a notice period of `notice_days`,
    a shortfall recovered at the monthly `notice_components` over `notice_divisor` a day."""

    effective_from: dt.date
    encashment_components: tuple[str, ...]
    encashment_divisor: Decimal
    encashment_max_days: Decimal
    notice_days: int
    notice_components: tuple[str, ...]
    notice_divisor: Decimal
    gratuity_act_covered: bool = True  # the establishment is covered (s.1(3)); an employee's own flag overrides


@dataclass(frozen=True)
class GratuityExemption:
    """Income-tax Act s.10(10)(ii) (an employee covered by the Payment of Gratuity Act): gratuity is exempt
    up to the least of the amount, `ceiling`, and `days_per_year`/`days_per_month` (15/26) of the last
    drawn monthly `wage_components` per completed year of service (a part year over six months counting).
    s.10(10)(iii) (not covered): the least of the amount, `ceiling`, and `uncovered_months_per_year` (half)
    a month's average salary (`uncovered_wage_components`) of the `uncovered_average_months` (10) months
    before the month of leaving, per completed year (a part year not counting)."""

    effective_from: dt.date
    ceiling: Decimal
    days_per_year: Decimal
    days_per_month: Decimal
    wage_components: tuple[str, ...]
    uncovered_months_per_year: Decimal = Decimal("0.5")
    uncovered_average_months: int = 10
    uncovered_wage_components: tuple[str, ...] = ("basic",)


@dataclass(frozen=True)
class EarnedLeavePolicy:
    """The company's earned leave: `accrual_per_month` days for each calendar month employed throughout;
    at the end of a leave year (a calendar year) at most `carry_forward_max` days are carried forward."""

    effective_from: dt.date
    accrual_per_month: Decimal
    carry_forward_max: Decimal


@dataclass(frozen=True)
class LeaveEncashmentExemption:
    """Income-tax Act s.10(10AA)(ii) (a non-government employee leaving): leave encashment is exempt up to
    the least of the amount, `ceiling`, `average_months` (10) times the average monthly salary of the
    last `average_months` months, and the cash equivalent of the leave at most `days_per_year` (30) per
    completed year, a day being the average monthly salary over `day_divisor` (30)."""

    effective_from: dt.date
    ceiling: Decimal
    average_months: int
    days_per_year: Decimal
    day_divisor: Decimal
    wage_components: tuple[str, ...]


def _dec(data: Mapping[str, Any], key: str) -> Decimal:
    value = data[key]
    if isinstance(value, float):
        raise BadRate(f"{key} must be a decimal string, not a float")
    result = Decimal(str(value))
    if not result.is_finite() or result < 0:
        raise BadRate(f"{key} must be a non-negative number")
    return result


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BadRate(f"{key} must be true or false")
    return value


def _rounding(data: Mapping[str, Any], default: str) -> str:
    rule = data.get("rounding", default)
    if rule not in ROUNDINGS:
        raise BadRate(f"rounding must be one of {sorted(ROUNDINGS)}")
    return str(rule)


def _slabs(raw: Iterable[Mapping[str, Any]]) -> tuple[Slab, ...]:
    slabs = tuple(Slab(_dec(s, "over"), _dec(s, "amount"), _dec(s, "february") if "february" in s else None)
                  for s in raw)
    if not slabs or [s.over for s in slabs] != sorted({s.over for s in slabs}):
        raise BadRate("slabs must be a non-empty list in increasing order of 'over'")
    return slabs


def _rate_slabs(raw: Iterable[Mapping[str, Any]], *, may_be_empty: bool = False) -> tuple[RateSlab, ...]:
    slabs = tuple(RateSlab(_dec(s, "over"), _dec(s, "rate")) for s in raw)
    if (not slabs and not may_be_empty) or [s.over for s in slabs] != sorted({s.over for s in slabs}):
        raise BadRate("rate slabs must be in increasing order of 'over'")
    return slabs


def _components(raw: Iterable[Any], name: str) -> tuple[str, ...]:
    components = tuple(str(c) for c in raw)
    if not components or set(components) - set(COMPONENTS):
        raise BadRate(f"{name} must name components of {COMPONENTS}")
    return components


def _months(raw: Iterable[Any]) -> tuple[int, ...]:
    months = tuple(int(m) for m in raw)
    if not months or any(m < 1 or m > 12 for m in months):
        raise BadRate("months must be numbers 1 to 12")
    return months


# What a row parses into, one class per kind.
Rate = (PFRate | ESIRate | ProfessionalTax | IncomeTaxRegime | OvertimePolicy | DeductionLimit | AttendancePolicy
        | GratuityRule | SeparationPolicy | GratuityExemption | LeaveEncashmentExemption | EarnedLeavePolicy)
R = TypeVar("R", bound=Rate)


def parse(kind: str, scope: str, effective_from: dt.date, data: Mapping[str, Any]) -> Rate:
    """The typed rate a row's `data` describes; BadRate saying what is wrong otherwise."""
    try:
        if kind == "pf":
            definition = str(data.get("wage_definition", "components"))
            if definition not in PF_DEFINITIONS:
                raise BadRate(f"wage_definition must be one of {PF_DEFINITIONS}")
            wage_components = _components(data.get("wage_components", ("basic",)), "wage_components")
            excluded = tuple(data.get("excluded_components", ()))
            if set(excluded) - set(COMPONENTS):
                raise BadRate(f"excluded_components must name components of {COMPONENTS}")
            limit = _dec(data, "excluded_limit_percent") if "excluded_limit_percent" in data else Decimal(50)
            return PFRate(effective_from, _dec(data, "employee_rate"), _dec(data, "employer_rate"),
                          _dec(data, "eps_rate"), _dec(data, "wage_ceiling"), _rounding(data, "rupee"),
                          definition, wage_components, excluded, limit, bool(data.get("cap_wages", True)))
        if kind == "esi":
            return ESIRate(effective_from, _dec(data, "employee_rate"), _dec(data, "employer_rate"),
                           _dec(data, "wage_threshold"), _rounding(data, "rupee_up"),
                           _months(data.get("contribution_periods_start", (4, 10))),
                           _dec(data, "employee_exempt_daily_wage_upto")
                           if "employee_exempt_daily_wage_upto" in data else None)
        if kind == "professional_tax":
            period = data.get("period", "monthly")
            if period not in ("monthly", "half_yearly"):
                raise BadRate("period must be 'monthly' or 'half_yearly'")
            female = _slabs(data["slabs_female"]) if data.get("slabs_female") else None
            deduct = _months(data["deduct_in_months"]) if period == "half_yearly" else ()
            return ProfessionalTax(scope, effective_from, period, _slabs(data["slabs"]), female,
                                   _months(data.get("half_years_start", (4, 10))), deduct)
        if kind == "income_tax":
            rebate = data.get("rebate") or {}
            return IncomeTaxRegime(
                scope, effective_from, str(data["financial_year"]), _dec(data, "standard_deduction"),
                _rate_slabs(data["slabs"]), _dec(rebate, "income_upto") if rebate else Decimal(0),
                _dec(rebate, "max") if rebate else Decimal(0), bool(rebate.get("marginal_relief", False)),
                _rate_slabs(data.get("surcharge", ()), may_be_empty=True), _dec(data, "cess_rate"),
                _rounding(data, "rupee"))
        if kind == "overtime":
            basis = _components(data.get("basis", COMPONENTS), "basis")
            policy = OvertimePolicy(effective_from, _dec(data, "standard_hours_per_day"), _dec(data, "multiplier"),
                                    basis, _dec(data, "days_per_month"))
            if policy.standard_hours_per_day == 0 or policy.days_per_month == 0:
                raise BadRate("standard_hours_per_day and days_per_month must be positive")
            return policy
        if kind == "wage_deductions":
            limits = DeductionLimit(effective_from, _dec(data, "limit_percent"),
                                    _dec(data, "limit_percent_with_cooperative"))
            if not 0 < limits.percent <= limits.percent_with_cooperative <= 100:
                raise BadRate("limits must be percentages, the co-operative one at least the other")
            return limits
        if kind == "attendance":
            offs = tuple(int(d) for d in data.get("weekly_offs", (6,)))
            if any(d < 0 or d > 6 for d in offs):
                raise BadRate("weekly_offs are Python weekdays, 0 (Monday) to 6 (Sunday)")
            return AttendancePolicy(effective_from, dt.time.fromisoformat(str(data["day_start"])),
                                    int(data.get("grace_minutes", 0)), _dec(data, "half_day_below_hours"), offs)
        if kind == "gratuity":
            rule = GratuityRule(effective_from, _dec(data, "days_per_year"), _dec(data, "days_per_month"),
                                _components(data.get("wage_components", ("basic",)), "wage_components"),
                                int(data["min_years"]), int(data["last_year_days"]), _dec(data, "ceiling"))
            if rule.days_per_month == 0:
                raise BadRate("days_per_month must be positive")
            return rule
        if kind == "separation":
            separation = SeparationPolicy(
                effective_from, _components(data.get("encashment_components", ("basic",)), "encashment_components"),
                _dec(data, "encashment_divisor"), _dec(data, "encashment_max_days"), int(data["notice_days"]),
                _components(data.get("notice_components", COMPONENTS), "notice_components"),
                _dec(data, "notice_divisor"), _flag(data, "gratuity_act_covered", True))
            if separation.encashment_divisor == 0 or separation.notice_divisor == 0 or separation.notice_days < 0:
                raise BadRate("divisors must be positive and notice_days not negative")
            return separation
        if kind == "gratuity_exemption":
            exemption = GratuityExemption(effective_from, _dec(data, "ceiling"), _dec(data, "days_per_year"),
                                          _dec(data, "days_per_month"),
                                          _components(data.get("wage_components", ("basic",)), "wage_components"),
                                          _dec({"v": data.get("uncovered_months_per_year", "0.5")}, "v"),
                                          int(data.get("uncovered_average_months", 10)),
                                          _components(data.get("uncovered_wage_components", ("basic",)),
                                                      "uncovered_wage_components"))
            if exemption.days_per_month == 0 or exemption.uncovered_average_months <= 0:
                raise BadRate("days_per_month and uncovered_average_months must be positive")
            return exemption
        if kind == "earned_leave":
            return EarnedLeavePolicy(effective_from, _dec(data, "accrual_per_month"), _dec(data, "carry_forward_max"))
        if kind == "leave_encashment_exemption":
            leave = LeaveEncashmentExemption(
                effective_from, _dec(data, "ceiling"), int(data["average_months"]), _dec(data, "days_per_year"),
                _dec(data, "day_divisor"), _components(data.get("wage_components", ("basic",)), "wage_components"))
            if leave.average_months <= 0 or leave.day_divisor == 0:
                raise BadRate("average_months and day_divisor must be positive")
            return leave
    except BadRate as exc:
        raise BadRate(f"{kind}/{scope} from {effective_from}: {exc}") from exc
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise BadRate(f"{kind}/{scope} from {effective_from}: missing or malformed {exc}") from exc
    raise BadRate(f"unknown rate kind {kind!r}")


class RateBook:
    """Every rate row, read once per job (the table holds tens of rows), answering "what was in force
    on this date" and parsing each row once."""

    def __init__(self, rows: Iterable[tuple[str, str, dt.date, Mapping[str, Any]]]) -> None:
        self._rows: dict[tuple[str, str], list[tuple[dt.date, Mapping[str, Any]]]] = {}
        for kind, scope, effective_from, data in rows:
            self._rows.setdefault((kind, scope), []).append((effective_from, data))
        for versions in self._rows.values():
            versions.sort(key=lambda v: v[0])
        self._parsed: dict[tuple[str, str, dt.date], Rate] = {}
        self._answers: dict[tuple[str, str, dt.date], Rate] = {}
        # The calculation's rates per month (calculation.MonthRates by its Period): derived from this
        # book's rows only, so they are kept as long as the book and never shared with another book.
        self.per_month: dict[Any, Any] = {}

    @classmethod
    def load(cls, session: Session) -> RateBook:
        rows = session.execute(select(StatutoryRate.kind, StatutoryRate.scope, StatutoryRate.effective_from,
                                      StatutoryRate.data))
        return cls((kind, scope, effective_from, data) for kind, scope, effective_from, data in rows)

    def in_force(self, kind: str, scope: str, on: dt.date) -> Rate:
        """The parsed row of this kind and scope in force on `on` (asked once per employee and rate: cached)."""
        key = (kind, scope, on)
        if key not in self._answers:
            self._answers[key] = self._find(kind, scope, on)
        return self._answers[key]

    def _find(self, kind: str, scope: str, on: dt.date) -> Rate:
        versions = self._rows.get((kind, scope), [])
        index = bisect.bisect_right([v[0] for v in versions], on) - 1
        if index < 0:
            raise MissingRate(f"no {kind.replace('_', ' ')} data for {scope} in force on {on.isoformat()}")
        effective_from, data = versions[index]
        key = (kind, scope, effective_from)
        if key not in self._parsed:
            self._parsed[key] = parse(kind, scope, effective_from, data)
        return self._parsed[key]

    def _of(self, expected: type[R], kind: str, scope: str, on: dt.date) -> R:
        rate = self.in_force(kind, scope, on)
        if not isinstance(rate, expected):  # parse() reads each kind as one class: never
            raise TypeError(f"{kind} read as {type(rate).__name__}, not {expected.__name__}")
        return rate

    def pf(self, on: dt.date) -> PFRate:
        return self._of(PFRate, "pf", "IN", on)

    def esi(self, on: dt.date) -> ESIRate:
        return self._of(ESIRate, "esi", "IN", on)

    def professional_tax(self, state: str, on: dt.date) -> ProfessionalTax:
        return self._of(ProfessionalTax, "professional_tax", state, on)

    def income_tax(self, on: dt.date, regime: str = "new") -> IncomeTaxRegime:
        return self._of(IncomeTaxRegime, "income_tax", regime, on)

    def overtime(self, on: dt.date) -> OvertimePolicy:
        return self._of(OvertimePolicy, "overtime", "IN", on)

    def attendance(self, on: dt.date) -> AttendancePolicy:
        return self._of(AttendancePolicy, "attendance", "IN", on)

    def deduction_limit(self, on: dt.date) -> DeductionLimit:
        return self._of(DeductionLimit, "wage_deductions", "IN", on)

    def gratuity(self, on: dt.date) -> GratuityRule:
        return self._of(GratuityRule, "gratuity", "IN", on)

    def separation(self, on: dt.date) -> SeparationPolicy:
        return self._of(SeparationPolicy, "separation", "IN", on)

    def gratuity_exemption(self, on: dt.date) -> GratuityExemption:
        return self._of(GratuityExemption, "gratuity_exemption", "IN", on)

    def leave_encashment_exemption(self, on: dt.date) -> LeaveEncashmentExemption:
        return self._of(LeaveEncashmentExemption, "leave_encashment_exemption", "IN", on)

    def earned_leave(self, on: dt.date) -> EarnedLeavePolicy:
        return self._of(EarnedLeavePolicy, "earned_leave", "IN", on)

    def earned_leave_history(self, until: dt.date) -> list[EarnedLeavePolicy]:
        """Every earned-leave row in force at some time up to `until`, oldest first (the ledger's months
        take each its own)."""
        versions = [f for f, _ in self._rows.get(("earned_leave", "IN"), []) if f <= until]
        return [self.earned_leave(f) for f in versions]
