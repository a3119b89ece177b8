"""Leave: employees apply, HR approves or rejects with a reason; an approved leave marks its working
days as `leave` in attendance (weekly offs and holidays stay what they are). Overlapping requests
(pending or approved) are refused: applications of one employee are serialised by a transaction
lock, so two at once cannot both pass the check. `unpaid` leave is loss of pay in payroll; every
other type is paid. Every function runs in the caller's session (row-level security applies).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ombaro.models.hr import LEAVE_TYPES, AttendanceRecord, Employee, LeaveRequest, SalaryRecord
from ombaro.models.payroll import Holiday
from ombaro.payroll.errors import refused_by_policy
from ombaro.payroll.rates import MissingRate, RateBook

LIVE = ("pending", "approved")


class LeaveError(Exception):
    pass


class LeaveNotFound(LeaveError):
    """404."""


class LeaveConflict(LeaveError):
    """409: overlaps another request, or is no longer pending."""


class LeaveNotAllowed(LeaveError):
    """403: deciding one's own request."""


class InvalidLeave(LeaveError):
    """422."""


def apply(session: Session, employee_id: uuid.UUID, *, leave_type: str, from_date: dt.date, to_date: dt.date,
          reason: str, documents: list[str] | None = None) -> LeaveRequest:
    if leave_type not in LEAVE_TYPES:
        raise InvalidLeave(f"leave_type must be one of {', '.join(LEAVE_TYPES)}")
    if to_date < from_date:
        raise InvalidLeave("to_date is before from_date")
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise LeaveNotFound("you are not on the employee rolls")
    if from_date < employee.joining_date or (employee.last_working_date and to_date > employee.last_working_date):
        raise InvalidLeave("the leave falls outside your employment")
    # One employee's applications queue here until the transaction ends: the overlap check below
    # then sees any request committed by a concurrent application.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('ombaro.leave:' || :employee, 0))"),
                    {"employee": str(employee_id)})
    overlapping = session.scalars(select(LeaveRequest).where(
        LeaveRequest.employee_id == employee_id, LeaveRequest.status.in_(LIVE),
        LeaveRequest.from_date <= to_date, LeaveRequest.to_date >= from_date).limit(1)).first()
    if overlapping is not None:
        raise LeaveConflict(f"overlaps your {overlapping.status} {overlapping.leave_type} leave "
                            f"{overlapping.from_date.isoformat()} to {overlapping.to_date.isoformat()}")
    request = LeaveRequest(employee_id=employee_id, leave_type=leave_type, from_date=from_date, to_date=to_date,
                           reason=reason, status="pending", documents=documents)
    with refused_by_policy("apply for leave"):
        session.add(request)
        session.flush()
    return request


def _pending(session: Session, request_id: uuid.UUID, decider: uuid.UUID | None) -> LeaveRequest:
    request = session.scalars(select(LeaveRequest).where(LeaveRequest.id == request_id).with_for_update()).one_or_none()
    if request is None:
        raise LeaveNotFound(f"no leave request {request_id}")
    if request.status != "pending":
        raise LeaveConflict(f"the request is {request.status}, not pending")
    if decider is not None and request.employee_id == decider:
        raise LeaveNotAllowed("nobody decides their own leave")
    return request


def _approver(session: Session, decider: uuid.UUID | None) -> uuid.UUID | None:
    # approved_by references employees: a decider without an employee record (a bare super admin) is not named.
    return decider if decider and session.get(Employee, decider) is not None else None


def working_days(session: Session, from_date: dt.date, to_date: dt.date) -> list[dt.date]:
    """The days of the range that are neither a weekly off (attendance policy) nor a holiday."""
    holidays = set(session.scalars(select(Holiday.date).where(Holiday.date.between(from_date, to_date))))
    try:
        offs = set(RateBook.load(session).attendance(from_date).weekly_offs)
    except MissingRate:
        offs = {6}
    days = [from_date + dt.timedelta(days=n) for n in range((to_date - from_date).days + 1)]
    return [d for d in days if d.weekday() not in offs and d not in holidays]


def approve(session: Session, request_id: uuid.UUID, decider: uuid.UUID | None) -> dict[str, Any]:
    """Approve, and mark the leave's working days as leave in attendance (keeping any times).
    Returns the request and warnings (a month already approved for payroll is not recomputed)."""
    request = _pending(session, request_id, decider)
    approver = _approver(session, decider)
    days = working_days(session, request.from_date, request.to_date)
    table = AttendanceRecord.__table__
    assert isinstance(table, Table)  # a mapped class's table (typed as any FromClause by SQLAlchemy)
    with refused_by_policy("approve leave"):
        request.status, request.approved_by, request.approved_date = "approved", approver, func.now()
        session.flush()
        if days:
            statement = pg_insert(table).values([
                {"employee_id": request.employee_id, "date": d, "status": "leave", "approved_by": approver,
                 "notes": f"{request.leave_type} leave {request.id}"} for d in days])
            session.execute(statement.on_conflict_do_update(
                index_elements=["employee_id", "date"],
                set_={"status": "leave", "approved_by": approver, "notes": statement.excluded.notes,
                      "updated_at": func.now()}))
    months = sorted({(d.year, d.month) for d in days})
    final = session.execute(select(SalaryRecord.year, SalaryRecord.month, SalaryRecord.status).where(
        SalaryRecord.employee_id == request.employee_id, SalaryRecord.status.in_(("processed", "paid")),
        tuple_(SalaryRecord.year, SalaryRecord.month).in_(months))).all() if months else []
    warnings = [f"salary for {y}-{m:02d} is already {s}: this leave does not change it" for y, m, s in final]
    session.refresh(request)
    return {"request": request, "days_marked": len(days), "warnings": warnings}


def reject(session: Session, request_id: uuid.UUID, decider: uuid.UUID | None, reason: str) -> LeaveRequest:
    request = _pending(session, request_id, decider)
    with refused_by_policy("reject leave"):
        request.status, request.rejection_reason = "rejected", reason
        request.approved_by, request.approved_date = _approver(session, decider), func.now()
        session.flush()
    session.refresh(request)
    return request


def cancel(session: Session, request_id: uuid.UUID, employee_id: uuid.UUID | None) -> LeaveRequest:
    """The employee withdraws their own pending request."""
    request = session.scalars(select(LeaveRequest).where(
        LeaveRequest.id == request_id, LeaveRequest.employee_id == employee_id).with_for_update()).one_or_none()
    if request is None:
        raise LeaveNotFound(f"no leave request {request_id} of yours")
    if request.status != "pending":
        raise LeaveConflict(f"the request is {request.status}: only a pending request can be withdrawn")
    with refused_by_policy("withdraw leave"):
        request.status = "cancelled"
        session.flush()
    return request


def list_requests(session: Session, *, employee_id: uuid.UUID | None, status: str | None,
                  limit: int) -> Sequence[LeaveRequest]:
    query = select(LeaveRequest).order_by(LeaveRequest.from_date.desc(), LeaveRequest.id).limit(limit)
    if employee_id is not None:
        query = query.where(LeaveRequest.employee_id == employee_id)
    if status is not None:
        query = query.where(LeaveRequest.status == status)
    return session.scalars(query).all()
