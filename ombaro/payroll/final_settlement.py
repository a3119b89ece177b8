"""Full and final settlement of a leaver (docs/payroll.md, "Full and final settlement"): gratuity under
the Payment of Gratuity Act, leave encashment and notice-pay recovery by the company's dated policy,
beside the salary to the last working day (which the monthly run pays, pro-rated exactly by the
calculation). Each amount is an exact numerator with one division, rounded once to the paisa.

`settle` is pure (no database); `settle_employee` loads one leaver, computes and records the
settlement in `final_settlements` (one per employee; recomputed until paid), with the tax on it
(`settlement_tax`: exempt and taxable parts, TDS on the taxable part, deducted from `net_amount`).
`approve` (maker-checker) and the bank file (`pay_by_bank_file`) pay it once.
"""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ombaro.db import fixed_insert
from ombaro.models.hr import Employee, SalaryRecord
from ombaro.models.payroll import FinalSettlement, SalaryRecordDetail, TaxDeclaration
from ombaro.money import round_money
from ombaro.payroll import leave_ledger, runs, settlement_tax
from ombaro.payroll.calculation import ZERO, Period, Structure, segments
from ombaro.payroll.errors import PayrollConflict, PayrollForbidden, PayrollInvalid, RecordNotFound
from ombaro.payroll.rates import GratuityRule, RateBook, SeparationPolicy
from ombaro.payroll.settlement_tax import Part


def _anniversary(joined: dt.date, years: int) -> dt.date:
    try:
        return joined.replace(year=joined.year + years)
    except ValueError:  # joined on 29 February: the anniversary in a common year is 1 March
        return dt.date(joined.year + years, 3, 1)


def _months_after(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Service:
    """Service from the joining day through the last working day: completed years, the days after the
    last completed year, and the years gratuity counts (s.4(2): a part of a year in excess of six
    months is a year)."""

    years: int
    days: int
    counted_years: int
    eligible: bool


def service(joined: dt.date, last_day: dt.date, rule: GratuityRule) -> Service:
    end = last_day + dt.timedelta(days=1)  # service runs to the end of the last working day
    years = 0
    while _anniversary(joined, years + 1) <= end:
        years += 1
    since = _anniversary(joined, years)
    days = (end - since).days
    counted = years + (1 if _months_after(since, 6) < end else 0)  # exactly six months is not "in excess"
    eligible = years >= rule.min_years or (years == rule.min_years - 1 and days >= rule.last_year_days)
    return Service(years, days, counted, eligible)


@dataclass(frozen=True)
class Leaver:
    employee_id: uuid.UUID
    joining_date: dt.date
    last_working_date: dt.date
    structure: Structure  # in force on the last working day
    earned_leave_days: Decimal = ZERO
    resignation_date: dt.date | None = None  # notice given on this day (None: no notice owed)


@dataclass(frozen=True)
class Settlement:
    service: Service
    last_wage: Decimal  # monthly basic and DA (the gratuity rule's components)
    gratuity: Decimal
    leave_encashment: Decimal
    notice_shortfall_days: int
    notice_recovery: Decimal
    explanation: dict[str, Any]

    @property
    def net(self) -> Decimal:
        """What the settlement pays beyond the last month's salary (negative: owed by the leaver)."""
        return self.gratuity + self.leave_encashment - self.notice_recovery


def _monthly(structure: Structure, components: tuple[str, ...]) -> Decimal:
    return sum((getattr(structure, c) for c in components), ZERO)


def settle(leaver: Leaver, book: RateBook) -> Settlement:
    """Gratuity (s.4), leave encashment and notice recovery by the rules in force on the last working day."""
    last_day = leaver.last_working_date
    rule: GratuityRule = book.gratuity(last_day)
    policy: SeparationPolicy = book.separation(last_day)
    worked = service(leaver.joining_date, last_day, rule)
    wage = _monthly(leaver.structure, rule.wage_components)
    gratuity = ZERO
    if worked.eligible:
        earned = round_money(wage * rule.days_per_year * worked.counted_years / rule.days_per_month)
        gratuity = min(rule.ceiling, earned)
    days = min(leaver.earned_leave_days, policy.encashment_max_days)
    per_month = _monthly(leaver.structure, policy.encashment_components)
    encashment = round_money(days * per_month / policy.encashment_divisor)
    shortfall = 0
    if leaver.resignation_date is not None:
        served = (last_day - leaver.resignation_date).days + 1
        shortfall = max(0, policy.notice_days - served)
    recovery = round_money(shortfall * _monthly(leaver.structure, policy.notice_components) / policy.notice_divisor)
    explanation = {
        "service": {"years": worked.years, "days": worked.days, "counted_years": worked.counted_years,
                    "gratuity_eligible": worked.eligible},
        "gratuity": {"monthly_wage": str(wage), "days_per_year": str(rule.days_per_year),
                     "days_per_month": str(rule.days_per_month), "ceiling": str(rule.ceiling),
                     "capped": worked.eligible and gratuity == rule.ceiling},
        "leave_encashment": {"days": str(days), "divisor": str(policy.encashment_divisor)},
        "notice": {"days": policy.notice_days, "shortfall_days": shortfall, "divisor": str(policy.notice_divisor)},
        "rates": {"gratuity": rule.effective_from.isoformat(), "separation": policy.effective_from.isoformat()},
    }
    return Settlement(worked, wage, gratuity, encashment, shortfall, recovery, explanation)


# --- one leaver, recorded --------------------------------------------------------------------------------


def _salary(session: Session, employee_id: uuid.UUID, last_day: dt.date, book: RateBook) -> dict[str, Any]:
    """The last month's salary to the last working day: its record if the monthly run wrote one, else
    what the run will compute (the same calculation, not yet recorded). With it, the month's income-tax
    projection (`tds`: the year's projected income and the regime), which the settlement's TDS uses."""
    period = Period(last_day.year, last_day.month)
    record = session.execute(
        select(SalaryRecord.status, SalaryRecord.gross_salary, SalaryRecord.net_salary, SalaryRecordDetail.explanation)
        .outerjoin(SalaryRecordDetail, SalaryRecordDetail.salary_record_id == SalaryRecord.id)
        .where(SalaryRecord.employee_id == employee_id, SalaryRecord.year == period.year,
               SalaryRecord.month == period.month)).one_or_none()
    if record is not None:
        return {"month": period.label(), "status": record.status, "gross": str(record.gross_salary),
                "net": str(record.net_salary), "tds": dict((record.explanation or {}).get("tds", {}))}
    outcome = runs.compute_employees(session, period, [employee_id], book)
    if outcome.failures:
        _, kind, reason = outcome.failures[0]
        return {"month": period.label(), "status": "not computable", "reason": f"{kind}: {reason}"}
    _, payslip = outcome.payslips[0]
    return {"month": period.label(), "status": "not yet run", "gross": str(payslip.gross), "net": str(payslip.net),
            "paid_days": str(payslip.paid_days), "tds": dict(payslip.explanation.get("tds", {}))}


def _year_income(session: Session, employee_id: uuid.UUID, last_day: dt.date,
                 salary: dict[str, Any]) -> tuple[Decimal, str]:
    """The financial year's projected salary income and the regime, as the last month's run projects
    them (calculation._tds: with no month left after the last working day's, the projection is the
    year's income). When that month cannot be computed: the year's records and the 12B declaration."""
    projection: dict[str, Any] = salary.get("tds") or {}
    # A record computed before the last working day was set projects months after it: not the year's income.
    if "projected_income" in projection and projection.get("months_left_after") == 0:
        return Decimal(projection["projected_income"]), str(projection["regime"])
    fy = Period(last_day.year, last_day.month).fy_start
    declared = session.execute(select(TaxDeclaration.regime, TaxDeclaration.previous_income).where(
        TaxDeclaration.employee_id == employee_id, TaxDeclaration.financial_year == fy.year)).one_or_none()
    first, last = Period(fy.year, 4).index, Period(last_day.year, last_day.month).index
    paid = session.scalar(select(func.coalesce(func.sum(SalaryRecord.gross_salary), 0)).where(
        SalaryRecord.employee_id == employee_id,
        (SalaryRecord.year * 12 + SalaryRecord.month - 1).between(first, last)))
    previous = declared.previous_income if declared else ZERO
    return Decimal(paid or 0) + previous, declared.regime if declared else "new"


def salary_months(structures: tuple[Structure, ...], joined: dt.date, last_day: dt.date, months: int,
                  components: tuple[str, ...]) -> list[Decimal]:
    """The monthly salary (`components`) in force at the end of each of the last `months` months of service,
    counted back from the last working day; nothing for a month not yet employed or without a structure."""
    salaries = []
    for back in range(months):
        day = _months_after(last_day, -back)
        in_force = [s for s in structures if s.effective_from <= day]
        salaries.append(_monthly(in_force[-1], components) if in_force and day >= joined else ZERO)
    return salaries


@dataclass(frozen=True)
class Taxed:
    gratuity: Part
    encashment: Part
    tds: Decimal
    explanation: dict[str, Any]


def _month_before(day: dt.date) -> dt.date:
    """The last day of the month before `day`'s."""
    return day.replace(day=1) - dt.timedelta(days=1)


def tax(result: Settlement, leaver: Leaver, structures: tuple[Structure, ...], year_income: Decimal, regime: str,
        book: RateBook, *, covered: bool = True) -> Taxed:
    """The settlement's exempt and taxable parts (rows in force on the last working day: the notifications
    apply to employees leaving on or after their dates) and the TDS on the taxable part (the income-tax
    row of the last working day's financial year). Gratuity: s.10(10)(ii) when the Payment of Gratuity
    Act covers the employee (`covered`), else s.10(10)(iii)."""
    last_day = leaver.last_working_date
    g_rule, l_rule = book.gratuity_exemption(last_day), book.leave_encashment_exemption(last_day)
    if covered:
        gratuity = settlement_tax.gratuity_part(result.gratuity, _monthly(leaver.structure, g_rule.wage_components),
                                                result.service.counted_years, g_rule)
        g_section = "10(10)(ii)"
    else:  # the months before the month of leaving: counted back from the last day of the month before
        before = salary_months(structures, leaver.joining_date, _month_before(last_day),
                               g_rule.uncovered_average_months, g_rule.uncovered_wage_components)
        gratuity = settlement_tax.uncovered_gratuity_part(result.gratuity, before, result.service.years, g_rule)
        g_section = "10(10)(iii)"
    salaries = salary_months(structures, leaver.joining_date, last_day, l_rule.average_months, l_rule.wage_components)
    encashment = settlement_tax.encashment_part(result.leave_encashment, salaries, leaver.earned_leave_days,
                                                result.service.years, l_rule)
    income_tax = book.income_tax(Period(last_day.year, last_day.month).fy_start, regime)
    tds, working = settlement_tax.tds_on(gratuity.taxable + encashment.taxable, year_income, income_tax)
    return Taxed(gratuity, encashment, tds, {
        "gratuity": {**gratuity.explain(), "section": g_section, "rates": g_rule.effective_from.isoformat()},
        "leave_encashment": {**encashment.explain(), "section": "10(10AA)(ii)",
                             "rates": l_rule.effective_from.isoformat()},
        "tds": working})


class NotALeaver(PayrollInvalid):
    """The request names no leaver this settlement can be computed for; `field` says which input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def check_leaver(session: Session, employee_id: uuid.UUID, resignation_date: dt.date | None,
                 earned_leave_days: Decimal | None = None, leave_override_reason: str | None = None) -> None:
    """What the command would refuse, said before it is submitted (the API's 422)."""
    if earned_leave_days is not None and not (leave_override_reason or "").strip():
        raise NotALeaver("leave_override_reason", "entering the earned leave balance needs a reason "
                                                  "(without it the ledger's balance is used)")
    last_day = session.execute(select(Employee.last_working_date).where(Employee.id == employee_id)).one_or_none()
    if last_day is None:
        raise NotALeaver("employee_id", f"no employee {employee_id}")
    if last_day.last_working_date is None:
        raise NotALeaver("employee_id", "the employee has no last working day")
    if resignation_date is not None and resignation_date > last_day.last_working_date:
        raise NotALeaver("resignation_date", "the resignation date is after the last working day")


_SETTLED = ("last_working_date", "resignation_date", "earned_leave_days", "service_years", "service_days",
            "counted_years", "last_wage", "gratuity", "leave_encashment", "notice_shortfall_days", "notice_recovery",
            "net_amount", "gratuity_exempt", "gratuity_taxable", "encashment_exempt", "encashment_taxable", "tds",
            "ledger_leave_days", "leave_override_reason", "explanation", "job_id", "computed_by")
# Recomputing an approved settlement sends it back for approval; a paid one is final (no row back).
_SETTLE = select(FinalSettlement).from_statement(fixed_insert(
    FinalSettlement.__table__, ("employee_id", *_SETTLED),
    "ON CONFLICT (employee_id) DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in _SETTLED)
    + ", status = 'computed', approved_by = NULL, approved_at = NULL, updated_at = now() "
    "WHERE final_settlements.status IN ('computed', 'approved')"))


def settle_employee(session: Session, employee_id: uuid.UUID, *, earned_leave_days: Decimal | None = None,
                    resignation_date: dt.date | None, leave_override_reason: str | None = None,
                    job_id: uuid.UUID | None = None, computed_by: uuid.UUID | None = None) -> dict[str, Any]:
    """Compute and record a leaver's full and final settlement (replacing an earlier computation). The
    earned leave balance is the ledger's on the last working day, unless HR enters `earned_leave_days`
    with a `leave_override_reason` (both recorded beside the ledger's balance)."""
    employee = session.execute(select(Employee.joining_date, Employee.last_working_date, Employee.name,
                                      Employee.employee_code, Employee.gratuity_act_covered).where(
        Employee.id == employee_id)).one_or_none()
    if employee is None:
        raise RecordNotFound(f"no employee {employee_id}")
    last_day = employee.last_working_date
    if last_day is None:
        raise PayrollConflict("the employee has no last working day: set it before the full and final settlement")
    if resignation_date is not None and resignation_date > last_day:
        raise PayrollConflict("the resignation date is after the last working day")
    reason = (leave_override_reason or "").strip() or None
    if earned_leave_days is not None and reason is None:
        raise NotALeaver("leave_override_reason", "entering the earned leave balance needs a reason "
                                                  "(without it the ledger's balance is used)")
    book = RateBook.load(session)
    ledger = leave_ledger.ledgers(session, [employee_id], last_day, book).get(employee_id, [])
    ledger_days = leave_ledger.balance(ledger)
    if earned_leave_days is None:
        earned_leave_days, reason = max(ledger_days, ZERO), None  # a negative balance encashes nothing
    covered = employee.gratuity_act_covered
    if covered is None:
        covered = book.separation(last_day).gratuity_act_covered
    g_rule = book.gratuity_exemption(last_day)
    since = min(_months_after(last_day, -book.leave_encashment_exemption(last_day).average_months),
                _months_after(_month_before(last_day), -g_rule.uncovered_average_months))
    structures = tuple(Structure(
        row.effective_from, row.basic, row.hra, row.transport, row.medical, row.special, row.other, row.pf_applicable,
        row.esi_applicable, row.pt_state, row.overtime_eligible)
        for row in session.execute(runs.STRUCTURES, {"ids": [employee_id], "start": since, "end": last_day}))
    parts = segments(structures, last_day, last_day)
    if not parts:
        raise PayrollConflict(f"no compensation structure in force on {last_day.isoformat()}")
    leaver = Leaver(employee_id, employee.joining_date, last_day, parts[0].structure, earned_leave_days,
                    resignation_date)
    result = settle(leaver, book)
    salary = _salary(session, employee_id, last_day, book)
    year_income, regime = _year_income(session, employee_id, last_day, salary)
    taxed = tax(result, leaver, structures, year_income, regime, book, covered=covered)
    values = {
        "last_working_date": last_day, "resignation_date": resignation_date, "earned_leave_days": earned_leave_days,
        "service_years": result.service.years, "service_days": result.service.days,
        "counted_years": result.service.counted_years, "last_wage": result.last_wage, "gratuity": result.gratuity,
        "leave_encashment": result.leave_encashment, "notice_shortfall_days": result.notice_shortfall_days,
        "notice_recovery": result.notice_recovery, "net_amount": result.net - taxed.tds,
        "gratuity_exempt": taxed.gratuity.exempt, "gratuity_taxable": taxed.gratuity.taxable,
        "encashment_exempt": taxed.encashment.exempt, "encashment_taxable": taxed.encashment.taxable,
        "tds": taxed.tds, "ledger_leave_days": ledger_days, "leave_override_reason": reason,
        "explanation": {**result.explanation, "salary": salary, "tax": taxed.explanation,
                        "gratuity_act_covered": covered,
                        "earned_leave": {"source": "hr" if reason else "ledger", "ledger_balance": str(ledger_days),
                                         "override_reason": reason, "ledger": [y.explain() for y in ledger]},
                        "employee": {"name": employee.name, "code": employee.employee_code}},
        "job_id": job_id, "computed_by": computed_by,
    }
    assert values.keys() == set(_SETTLED)
    row: FinalSettlement | None = session.scalars(_SETTLE, {"employee_id": employee_id, **values},
                                                  execution_options={"populate_existing": True}).one_or_none()
    if row is None:
        raise PayrollConflict("the full and final settlement was already paid")
    return as_result(row)


def as_result(row: FinalSettlement) -> dict[str, Any]:
    return {
        "id": str(row.id), "employee_id": str(row.employee_id), "status": row.status,
        "last_working_date": row.last_working_date.isoformat(),
        "resignation_date": row.resignation_date.isoformat() if row.resignation_date else None,
        "earned_leave_days": str(row.earned_leave_days), "service_years": row.service_years,
        "service_days": row.service_days, "counted_years": row.counted_years, "last_wage": str(row.last_wage),
        "gratuity": str(row.gratuity), "leave_encashment": str(row.leave_encashment),
        "notice_shortfall_days": row.notice_shortfall_days, "notice_recovery": str(row.notice_recovery),
        "gratuity_exempt": str(row.gratuity_exempt), "gratuity_taxable": str(row.gratuity_taxable),
        "encashment_exempt": str(row.encashment_exempt), "encashment_taxable": str(row.encashment_taxable),
        "tds": str(row.tds), "net_amount": str(row.net_amount), "explanation": row.explanation,
        "ledger_leave_days": None if row.ledger_leave_days is None else str(row.ledger_leave_days),
        "leave_override_reason": row.leave_override_reason,
        "approved_by": str(row.approved_by) if row.approved_by else None,
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
        "payment_date": row.payment_date.isoformat() if row.payment_date else None,
        "payment_reference": row.payment_reference,
    }


def who(row: FinalSettlement) -> tuple[str, str]:
    """Name and code for the statement: as recorded at computation (finance does not read `employees`)."""
    person: dict[str, Any] = (row.explanation or {}).get("employee", {})
    return str(person.get("name", "")), str(person.get("code", ""))


def get(session: Session, employee_id: uuid.UUID) -> FinalSettlement:
    """The employee's settlement, if the caller's policies show it."""
    row = session.scalars(select(FinalSettlement).where(FinalSettlement.employee_id == employee_id)).one_or_none()
    if row is None:
        raise RecordNotFound(f"no full and final settlement for employee {employee_id}")
    return row


def approve(session: Session, employee_id: uuid.UUID, *, approver: uuid.UUID) -> FinalSettlement:
    """HR approves a computed settlement for payment (maker-checker: not whoever computed it, nor an
    account they created). Recomputing sends it back to `computed`."""
    row = session.scalars(select(FinalSettlement).where(FinalSettlement.employee_id == employee_id)
                          .with_for_update()).one_or_none()
    if row is None:
        raise RecordNotFound(f"no full and final settlement for employee {employee_id}")
    if row.status != "computed":
        raise PayrollConflict(f"the full and final settlement is already {row.status}")
    if approver == row.computed_by:
        raise PayrollForbidden("the settlement was computed by you: another HR officer must approve it")
    runs.check_checker(session, maker=row.computed_by, approver=approver)  # nor an account the maker created
    session.execute(update(FinalSettlement).where(FinalSettlement.id == row.id).values(
        status="approved", approved_by=approver, approved_at=func.now(), updated_at=func.now()))
    return session.get_one(FinalSettlement, row.id, populate_existing=True)


def visible_ids(session: Session, status: str) -> list[uuid.UUID]:
    """The settlements in `status` the caller's policies show (the bank file pays exactly those)."""
    return list(session.scalars(select(FinalSettlement.id).where(FinalSettlement.status == status)))
