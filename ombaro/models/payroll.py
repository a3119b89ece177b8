"""Payroll: what the schema document lacks to pay people (docs/payroll.md).

Compensation per employee and effective date; the statutory rates, slabs and the company's
attendance and overtime policy as effective-dated data; the holiday calendar; HR's monthly
adjustments; one payroll run per month with its failures; and, per salary record, the lines that
explain it (the schema's `salary_records` keeps the figures).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

RATE_KINDS = ("pf", "esi", "professional_tax", "income_tax", "overtime", "attendance", "wage_deductions",
              "gratuity", "separation", "gratuity_exemption", "leave_encashment_exemption", "earned_leave")
HOLIDAY_KINDS = ("national", "gazetted", "company")
# bonus: the annual bonus (not a wage for ESI); incentive: a monthly incentive (a wage);
# cooperative_dues: a deduction paid to a co-operative society (Payment of Wages Act s.7(2)(j), s.7(3)).
ADJUSTMENT_KINDS = ("bonus", "incentive", "loan_emi", "salary_advance", "cooperative_dues")
TAX_REGIMES = ("new", "old")
RUN_STATUSES = ("computing", "computed", "approved")


class CompensationStructure(Base):
    """An employee's monthly pay from `effective_from` until the next structure of theirs starts."""

    __tablename__ = "compensation_structures"
    __table_args__ = (
        UniqueConstraint("employee_id", "effective_from"),
        CheckConstraint("basic >= 0 AND hra >= 0 AND transport >= 0 AND medical >= 0 AND special >= 0 "
                        "AND other >= 0", name="amounts_not_negative"),
        CheckConstraint("pt_state ~ '^[A-Z]{2}$'", name="pt_state"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    effective_from: Mapped[dt.date]
    basic: Mapped[Decimal]
    hra: Mapped[Decimal] = mapped_column(server_default=text("0"))
    transport: Mapped[Decimal] = mapped_column(server_default=text("0"))
    medical: Mapped[Decimal] = mapped_column(server_default=text("0"))
    special: Mapped[Decimal] = mapped_column(server_default=text("0"))
    other: Mapped[Decimal] = mapped_column(server_default=text("0"))
    pf_applicable: Mapped[bool] = mapped_column(server_default=text("true"))
    esi_applicable: Mapped[bool] = mapped_column(server_default=text("true"))
    pt_state: Mapped[str | None]  # two-letter state code; NULL: no professional tax
    overtime_eligible: Mapped[bool] = mapped_column(server_default=text("true"))
    notes: Mapped[str | None]
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class StatutoryRate(Base):
    """One rate, ceiling or slab table in force from `effective_from` until the next row of the same
    kind and scope. `scope` is 'IN' for national rates, a state code for professional tax and the
    regime ('new') for income tax. `data` is read by ombaro.payroll.rates."""

    __tablename__ = "statutory_rates"
    __table_args__ = (
        UniqueConstraint("kind", "scope", "effective_from"),
        CheckConstraint(f"kind IN {RATE_KINDS!r}", name="kind"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str]
    scope: Mapped[str] = mapped_column(server_default=text("'IN'"))
    effective_from: Mapped[dt.date]
    data: Mapped[dict[str, Any]]
    source: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class Holiday(Base):
    """A paid holiday of the whole platform."""

    __tablename__ = "holidays"
    __table_args__ = (CheckConstraint(f"kind IN {HOLIDAY_KINDS!r}", name="kind"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    date: Mapped[dt.date] = mapped_column(unique=True)
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(server_default=text("'gazetted'"))
    created_at: Mapped[dt.datetime] = created_at()


class PayrollAdjustment(Base):
    """A bonus, loan EMI or salary advance recovery HR enters for one employee and month."""

    __tablename__ = "payroll_adjustments"
    __table_args__ = (
        CheckConstraint(f"kind IN {ADJUSTMENT_KINDS!r}", name="kind"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payroll_adjustments_period", "year", "month", "employee_id"),
        Index("ix_payroll_adjustments_employee", "employee_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str]
    amount: Mapped[Decimal]
    note: Mapped[str | None]
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class TaxDeclaration(Base):
    """An employee's income-tax position for one financial year (`financial_year` is the year it
    starts in: 2026 is FY 2026-27): the regime they chose (section 115BAC; new unless they opt out),
    and the income and TDS before this payroll in the year: a previous employer's Form 12B, or this
    employer's pay before the engine paid them. Months of the year without a salary record are
    taken as covered by the declaration; without one they are estimated (docs/payroll.md)."""

    __tablename__ = "tax_declarations"
    __table_args__ = (
        UniqueConstraint("employee_id", "financial_year"),
        CheckConstraint(f"regime IN {TAX_REGIMES!r}", name="regime"),
        CheckConstraint("previous_income >= 0 AND previous_tds >= 0", name="amounts_not_negative"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    financial_year: Mapped[int] = mapped_column(Integer)
    regime: Mapped[str] = mapped_column(server_default=text("'new'"))
    previous_income: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    previous_tds: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    notes: Mapped[str | None]
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class PayrollRun(Base):
    """The payroll of one month. Each (re-)run bumps `generation` and fans out batches; the batch
    that completes the generation writes the summary."""

    __tablename__ = "payroll_runs"
    __table_args__ = (
        UniqueConstraint("year", "month"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month"),
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(server_default=text("'computing'"))
    generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    batches_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    batches_done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    employees: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    job_id: Mapped[uuid.UUID | None]  # the run's job; no FK: the command log may be pruned
    requested_by: Mapped[uuid.UUID | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    preflight: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    bank_files: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    approved_by: Mapped[uuid.UUID | None]
    approved_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class PayrollFailure(Base):
    """An employee the run could not pay, and why; cleared when they compute."""

    __tablename__ = "payroll_failures"
    __table_args__ = (
        UniqueConstraint("run_id", "employee_id"),
        Index("ix_payroll_failures_employee", "employee_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payroll_runs.id", ondelete="CASCADE"))
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    employee_code: Mapped[str | None]
    employee_name: Mapped[str | None]
    error_type: Mapped[str]
    reason: Mapped[str]
    failed_at: Mapped[dt.datetime] = created_at()


class SalaryRecordDetail(Base):
    """Why a salary record says what it says: days, segments, rates used, tax projection, and the
    employer's contributions. Who the employee was at the time is kept with it (a payslip is a
    snapshot, and finance reads it without reading `employees`)."""

    __tablename__ = "salary_record_details"

    id: Mapped[uuid.UUID] = uuid_pk()
    salary_record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("salary_records.id", ondelete="CASCADE"),
                                                        unique=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payroll_runs.id", ondelete="SET NULL"))
    employee_code: Mapped[str]
    employee_name: Mapped[str]
    department: Mapped[str | None]
    designation: Mapped[str | None]
    days_in_month: Mapped[int] = mapped_column(Integer)
    paid_days: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    lop_days: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    explanation: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    employer_contributions: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    computed_at: Mapped[dt.datetime] = created_at()


ARREARS_COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other", "overtime", "pf", "pf_eps",
                      "pf_epf")


class PayrollArrear(Base):
    """A line of arrears: what the salary record `salary_record_id` pays (or, negative, recovers) for
    an earlier, approved month (`for_year`, `for_month`) because a compensation change was backdated
    into it. `pf` is the employee's PF on it, `pf_eps`/`pf_epf` the employer's (docs/payroll.md)."""

    __tablename__ = "payroll_arrears"
    __table_args__ = (
        CheckConstraint(f"component IN {ARREARS_COMPONENTS!r}", name="component"),
        CheckConstraint("for_month BETWEEN 1 AND 12", name="for_month"),
        UniqueConstraint("salary_record_id", "for_year", "for_month", "component", name="uq_payroll_arrears_line"),
        Index("ix_payroll_arrears_employee_month", "employee_id", "for_year", "for_month"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    salary_record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("salary_records.id", ondelete="CASCADE"))
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    for_year: Mapped[int] = mapped_column(Integer)
    for_month: Mapped[int] = mapped_column(Integer)
    component: Mapped[str]
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[dt.datetime] = created_at()


FINAL_SETTLEMENT_STATUSES = ("computed", "approved", "paid")


class FinalSettlement(Base):
    """A leaver's full and final settlement: service, gratuity (Payment of Gratuity Act s.4), leave
    encashment and notice-pay recovery (company policy), and what it pays beyond the last month's
    salary (`net_amount`; negative: owed by the leaver). One per employee; recomputed until paid."""

    __tablename__ = "final_settlements"
    __table_args__ = (
        CheckConstraint(f"status IN {FINAL_SETTLEMENT_STATUSES!r}", name="status"),
        CheckConstraint("earned_leave_days >= 0", name="earned_leave_days"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(server_default=text("'computed'"))
    last_working_date: Mapped[dt.date]
    resignation_date: Mapped[dt.date | None]
    earned_leave_days: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    service_years: Mapped[int] = mapped_column(Integer)
    service_days: Mapped[int] = mapped_column(Integer)
    counted_years: Mapped[int] = mapped_column(Integer)
    last_wage: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gratuity: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    leave_encashment: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    notice_shortfall_days: Mapped[int] = mapped_column(Integer)
    notice_recovery: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    net_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    explanation: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    job_id: Mapped[uuid.UUID | None]
    # 0023: the exempt and taxable parts (Income-tax Act s.10(10)(ii), s.10(10AA)(ii)) and the TDS on the
    # taxable part (net_amount is after it); who computed and approved it; its payment.
    gratuity_exempt: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    gratuity_taxable: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    encashment_exempt: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    encashment_taxable: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    tds: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    computed_by: Mapped[uuid.UUID | None]
    approved_by: Mapped[uuid.UUID | None]
    approved_at: Mapped[dt.datetime | None]
    payment_date: Mapped[dt.date | None]
    payment_reference: Mapped[str | None] = mapped_column(index=True)
    # 0024: the earned-leave ledger's balance on the last working day, and HR's reason when HR entered
    # `earned_leave_days` instead (NULL: the ledger's balance was used).
    ledger_leave_days: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    leave_override_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
