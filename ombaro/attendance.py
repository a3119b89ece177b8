"""Attendance: employees check in and out; HR and the staff department correct a day with a note.

One record per employee and date (the schema's unique key); the date is the platform's (a check-in
at 00:30 IST belongs to that Indian day). The clock is the server's: a client cannot say when it
checked in. Late and half-day follow the attendance policy in `statutory_rates` (kind `attendance`).
Every function runs in the caller's session, so row-level security decides whose days exist.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.db import fixed_insert
from ombaro.models.hr import ATTENDANCE_STATUSES, AttendanceRecord, Employee
from ombaro.money import round_money
from ombaro.payroll.errors import refused_by_policy  # a write RLS refuses is a 403, as in payroll
from ombaro.payroll.rates import AttendancePolicy, RateBook


class AttendanceError(Exception):
    pass


class NotOnRolls(AttendanceError):
    """404: the caller (or the employee named) has no employee record for that day."""


class AttendanceConflict(AttendanceError):
    """409: already checked in, not checked in, already checked out."""


class InvalidAttendance(AttendanceError):
    """422: times that contradict each other, or a status outside the schema's."""


def work_hours(check_in: dt.datetime, check_out: dt.datetime) -> Decimal:
    """Hours between check-in and check-out, to the hundredth (half-up), as the schema stores them:
    whole microseconds / 3,600,000,000, exactly, rounded once (ombaro.money's half-up to 0.01)."""
    if check_out <= check_in:
        raise InvalidAttendance("check-out must be after check-in")
    hours = Fraction((check_out - check_in) // dt.timedelta(microseconds=1), 3_600_000_000)
    if hours >= 24:
        raise InvalidAttendance("a working day cannot last 24 hours or more")
    return round_money(hours)


def _employee_on(session: Session, employee_id: uuid.UUID, day: dt.date) -> Employee:
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise NotOnRolls("you are not on the employee rolls" if employee_id else "no such employee")
    if day < employee.joining_date or (employee.last_working_date and day > employee.last_working_date):
        raise NotOnRolls(f"{employee.employee_code} is not employed on {day.isoformat()}")
    return employee


def _policy(session: Session, day: dt.date) -> AttendancePolicy:
    return RateBook.load(session).attendance(day)


# A day HR marked beforehand (leave, holiday) becomes a worked day; a second check-in is refused
# (no row comes back).
_CHECK_IN = select(AttendanceRecord).from_statement(fixed_insert(
    AttendanceRecord.__table__, ("employee_id", "date", "check_in_time", "status", "check_in_location"),
    "ON CONFLICT (employee_id, date) DO UPDATE SET check_in_time = EXCLUDED.check_in_time, "
    "check_in_location = EXCLUDED.check_in_location, status = EXCLUDED.status, updated_at = EXCLUDED.check_in_time "
    "WHERE attendance_records.check_in_time IS NULL"))


def check_in(session: Session, employee_id: uuid.UUID, *, at: dt.datetime, zone: str,
             location: dict[str, Any] | None = None) -> AttendanceRecord:
    local = at.astimezone(ZoneInfo(zone))
    day = local.date()
    _employee_on(session, employee_id, day)
    status = "late" if local.time() > _policy(session, day).late_after else "present"
    with refused_by_policy("record attendance"):
        row: AttendanceRecord | None = session.scalars(_CHECK_IN, {
            "employee_id": employee_id, "date": day, "check_in_time": at, "status": status,
            "check_in_location": location}, execution_options={"populate_existing": True}).one_or_none()
    if row is None:
        raise AttendanceConflict(f"already checked in on {day.isoformat()}")
    return row


def check_out(session: Session, employee_id: uuid.UUID, *, at: dt.datetime, zone: str,
              location: dict[str, Any] | None = None) -> AttendanceRecord:
    """Closes today's open day (or yesterday's, for a shift past midnight) and computes its hours;
    a day shorter than the policy's half-day threshold becomes a half day."""
    day = at.astimezone(ZoneInfo(zone)).date()
    record = session.scalars(
        select(AttendanceRecord)
        .where(AttendanceRecord.employee_id == employee_id, AttendanceRecord.date.in_([day, day - dt.timedelta(1)]),
               AttendanceRecord.check_in_time.is_not(None), AttendanceRecord.check_out_time.is_(None))
        .order_by(AttendanceRecord.date.desc()).limit(1).with_for_update()).one_or_none()
    if record is None:
        raise AttendanceConflict("no open check-in today to check out from")
    assert record.check_in_time is not None
    hours = work_hours(record.check_in_time, at)
    with refused_by_policy("record attendance"):
        record.check_out_time, record.check_out_location, record.work_hours = at, location, hours
        if record.status in ("present", "late") and hours < _policy(session, record.date).half_day_below_hours:
            record.status = "half_day"
        session.flush()
    return record


def correct(session: Session, corrector_id: uuid.UUID | None, *, employee_id: uuid.UUID, date: dt.date,
            note: str, now: dt.datetime, status: str | None = None, check_in_time: dt.datetime | None = None,
            check_out_time: dt.datetime | None = None) -> AttendanceRecord:
    """HR or the staff department sets a day's status and/or times, creating the day if it had no
    record. The note is required and appended to the day's notes with who and when; the corrector
    is recorded as the day's approver."""
    if status is not None and status not in ATTENDANCE_STATUSES:
        raise InvalidAttendance(f"status must be one of {', '.join(ATTENDANCE_STATUSES)}")
    _employee_on(session, employee_id, date)
    record = session.scalars(select(AttendanceRecord).where(
        AttendanceRecord.employee_id == employee_id, AttendanceRecord.date == date).with_for_update()).one_or_none()
    if record is None and status is None:
        raise InvalidAttendance("a day with no record needs a status")
    check_in_time = check_in_time or (record.check_in_time if record else None)
    check_out_time = check_out_time or (record.check_out_time if record else None)
    hours = work_hours(check_in_time, check_out_time) if check_in_time and check_out_time else None
    approver = corrector_id if corrector_id and session.get(Employee, corrector_id) is not None else None
    line = f"[{now.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC correction by {corrector_id}] {note}"
    with refused_by_policy("correct attendance"):
        if record is None:
            record = AttendanceRecord(employee_id=employee_id, date=date, status=status, notes=line,
                                      check_in_time=check_in_time, check_out_time=check_out_time, work_hours=hours,
                                      approved_by=approver)
            session.add(record)
        else:
            record.status = status or record.status
            record.check_in_time, record.check_out_time, record.work_hours = check_in_time, check_out_time, hours
            record.notes = f"{record.notes}\n{line}" if record.notes else line
            record.approved_by = approver
        session.flush()
    return record


def list_days(session: Session, *, employee_id: uuid.UUID | None, date_from: dt.date | None,
              date_to: dt.date | None, limit: int) -> Sequence[AttendanceRecord]:
    query = select(AttendanceRecord).order_by(AttendanceRecord.date.desc(), AttendanceRecord.employee_id).limit(limit)
    if employee_id is not None:
        query = query.where(AttendanceRecord.employee_id == employee_id)
    if date_from is not None:
        query = query.where(AttendanceRecord.date >= date_from)
    if date_to is not None:
        query = query.where(AttendanceRecord.date <= date_to)
    return session.scalars(query).all()
