"""The inputs HR keeps for payroll (compensation, adjustments, holidays, statutory rates) and HR's
per-record decisions (hold, release). Every function runs in the caller's session: row-level
security decides whose rows exist; a write the policies refuse is a PayrollForbidden."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ombaro.db import fixed_insert
from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import CompensationStructure, Holiday, PayrollAdjustment, StatutoryRate, TaxDeclaration
from ombaro.payroll import rates
from ombaro.payroll.errors import NotHoldable, PayrollConflict, PayrollInvalid, RecordNotFound, refused_by_policy

COMPENSATION_FIELDS = ("basic", "hra", "transport", "medical", "special", "other", "pf_applicable",
                       "esi_applicable", "pt_state", "overtime_eligible", "notes")


def set_compensation(session: Session, *, employee_id: uuid.UUID, effective_from: dt.date, values: dict[str, Any],
                     created_by: uuid.UUID | None) -> CompensationStructure:
    """The employee's structure from `effective_from` (replacing one that starts the same day). Months
    already processed or paid keep what they were paid; pending ones change at the next run."""
    fields = {k: v for k, v in values.items() if k in COMPENSATION_FIELDS}
    statement = pg_insert(CompensationStructure).values(
        employee_id=employee_id, effective_from=effective_from, created_by=created_by, **fields)
    with refused_by_policy("set compensation"):
        return session.scalars(statement.on_conflict_do_update(
            index_elements=["employee_id", "effective_from"],
            set_={**{k: statement.excluded[k] for k in fields}, "created_by": created_by, "updated_at": func.now()},
        ).returning(CompensationStructure), execution_options={"populate_existing": True}).one()


def list_compensation(session: Session, employee_id: uuid.UUID | None, limit: int) -> Sequence[CompensationStructure]:
    query = select(CompensationStructure).order_by(CompensationStructure.employee_id,
                                                   CompensationStructure.effective_from.desc()).limit(limit)
    if employee_id is not None:
        query = query.where(CompensationStructure.employee_id == employee_id)
    return session.scalars(query).all()


_DECLARED = ("regime", "previous_income", "previous_tds", "notes", "created_by")
_DECLARE_TAX = select(TaxDeclaration).from_statement(fixed_insert(
    TaxDeclaration.__table__, ("employee_id", "financial_year", *_DECLARED),
    "ON CONFLICT (employee_id, financial_year) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _DECLARED) + ", updated_at = now()"))


def set_tax_declaration(session: Session, *, employee_id: uuid.UUID, financial_year: int, regime: str,
                        previous_income: Decimal, previous_tds: Decimal, notes: str | None = None,
                        created_by: uuid.UUID | None) -> TaxDeclaration:
    """The employee's regime and Form 12B figures for the financial year starting in April of
    `financial_year` (replacing what was declared). Months already paid keep their TDS; the next run
    spreads the year's tax, as now declared, over the months left."""
    values = {"regime": regime, "previous_income": previous_income, "previous_tds": previous_tds, "notes": notes,
              "created_by": created_by}
    with refused_by_policy("declare income tax"):
        declared: TaxDeclaration = session.scalars(
            _DECLARE_TAX, {"employee_id": employee_id, "financial_year": financial_year, **values},
            execution_options={"populate_existing": True}).one()
    return declared


def list_tax_declarations(session: Session, *, financial_year: int | None, employee_id: uuid.UUID | None,
                          limit: int) -> Sequence[TaxDeclaration]:
    query = select(TaxDeclaration).order_by(TaxDeclaration.financial_year.desc(), TaxDeclaration.employee_id)
    for column, value in ((TaxDeclaration.financial_year, financial_year), (TaxDeclaration.employee_id, employee_id)):
        if value is not None:
            query = query.where(column == value)
    return session.scalars(query.limit(limit)).all()


def add_adjustment(session: Session, *, employee_id: uuid.UUID, year: int, month: int, kind: str, amount: Decimal,
                   created_by: uuid.UUID | None, note: str | None = None) -> PayrollAdjustment:
    adjustment = PayrollAdjustment(employee_id=employee_id, year=year, month=month, kind=kind, amount=amount,
                                   note=note, created_by=created_by)
    with refused_by_policy("enter payroll adjustments"):
        session.add(adjustment)
        session.flush()
    return adjustment


def delete_adjustment(session: Session, adjustment_id: uuid.UUID) -> None:
    with refused_by_policy("remove payroll adjustments"):
        # A DELETE returns a CursorResult, which has the row count (Session.execute is typed as Result).
        deleted = cast(CursorResult[Any], session.execute(
            delete(PayrollAdjustment).where(PayrollAdjustment.id == adjustment_id))).rowcount
    if not deleted:
        raise RecordNotFound(f"no adjustment {adjustment_id}")


def list_adjustments(session: Session, *, year: int | None, month: int | None, employee_id: uuid.UUID | None,
                     limit: int) -> Sequence[PayrollAdjustment]:
    query = select(PayrollAdjustment).order_by(PayrollAdjustment.year.desc(), PayrollAdjustment.month.desc(),
                                               PayrollAdjustment.created_at).limit(limit)
    for column, value in ((PayrollAdjustment.year, year), (PayrollAdjustment.month, month),
                          (PayrollAdjustment.employee_id, employee_id)):
        if value is not None:
            query = query.where(column == value)
    return session.scalars(query).all()


def add_holiday(session: Session, *, date: dt.date, name: str, kind: str) -> Holiday:
    if session.scalar(select(Holiday.id).where(Holiday.date == date)) is not None:
        raise PayrollConflict(f"{date.isoformat()} is already a holiday")
    holiday = Holiday(date=date, name=name, kind=kind)
    with refused_by_policy("change the holiday calendar"):
        session.add(holiday)
        session.flush()
    return holiday


def list_holidays(session: Session, year: int | None) -> Sequence[Holiday]:
    query = select(Holiday).order_by(Holiday.date)
    if year is not None:
        query = query.where(Holiday.date.between(dt.date(year, 1, 1), dt.date(year, 12, 31)))
    return session.scalars(query).all()


def add_rate(session: Session, *, kind: str, scope: str, effective_from: dt.date, data: dict[str, Any],
             source: str | None) -> StatutoryRate:
    """A new effective-dated rate row (next year's budget is one of these). Its data must read as its
    kind requires; rows already in force are never edited, only superseded."""
    try:
        rates.parse(kind, scope, effective_from, data)
    except rates.BadRate as exc:
        raise PayrollInvalid(str(exc)) from exc
    exists = session.scalar(select(StatutoryRate.id).where(
        StatutoryRate.kind == kind, StatutoryRate.scope == scope, StatutoryRate.effective_from == effective_from))
    if exists is not None:
        raise PayrollConflict(f"{kind}/{scope} already has a row from {effective_from.isoformat()}")
    row = StatutoryRate(kind=kind, scope=scope, effective_from=effective_from, data=data, source=source)
    with refused_by_policy("change statutory rates"):
        session.add(row)
        session.flush()
    return row


def list_rates(session: Session, kind: str | None, scope: str | None) -> Sequence[StatutoryRate]:
    query = select(StatutoryRate).order_by(StatutoryRate.kind, StatutoryRate.scope, StatutoryRate.effective_from)
    if kind is not None:
        query = query.where(StatutoryRate.kind == kind)
    if scope is not None:
        query = query.where(StatutoryRate.scope == scope)
    return session.scalars(query).all()


def list_records(session: Session, *, year: int | None, month: int | None, employee_id: uuid.UUID | None,
                 limit: int) -> Sequence[SalaryRecord]:
    query = select(SalaryRecord).order_by(SalaryRecord.year.desc(), SalaryRecord.month.desc(),
                                          SalaryRecord.employee_id).limit(limit)
    for column, value in ((SalaryRecord.year, year), (SalaryRecord.month, month),
                          (SalaryRecord.employee_id, employee_id)):
        if value is not None:
            query = query.where(column == value)
    return session.scalars(query).all()


def _record(session: Session, record_id: uuid.UUID) -> SalaryRecord:
    record = session.scalars(select(SalaryRecord).where(SalaryRecord.id == record_id).with_for_update()).one_or_none()
    if record is None:
        raise RecordNotFound(f"no salary record {record_id}")
    return record


def hold(session: Session, record_id: uuid.UUID, reason: str) -> SalaryRecord:
    """Keep one employee's pay out of approval and the bank file, with the reason, until released."""
    record = _record(session, record_id)
    if record.status not in ("pending", "processed"):
        raise NotHoldable(f"a {record.status} salary record cannot be put on hold")
    with refused_by_policy("hold salaries"):
        session.execute(update(SalaryRecord).where(SalaryRecord.id == record_id).values(
            status="hold", notes=f"held: {reason}", updated_at=func.now()))
    session.refresh(record)
    return record


def release(session: Session, record_id: uuid.UUID) -> SalaryRecord:
    """A held record goes back to pending: the next run recomputes it and HR approves it again."""
    record = _record(session, record_id)
    if record.status != "hold":
        raise NotHoldable(f"the salary record is {record.status}, not on hold")
    with refused_by_policy("release held salaries"):
        session.execute(update(SalaryRecord).where(SalaryRecord.id == record_id).values(
            status="pending", notes=None, updated_at=func.now()))
    session.refresh(record)
    return record
