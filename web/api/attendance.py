"""Attendance: an employee checks in and out (the server's clock, the caller's own day); HR and the
staff department correct a day with a note. Row-level security decides whose days a caller sees."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import attendance
from ombaro.models.hr import ATTENDANCE_STATUSES
from web.auth import current_user, requires
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import Integer

blp = Blueprint("attendance", __name__, url_prefix="/api/v1/attendance", description="Attendance")


class AttendanceLocationSchema(Schema):
    latitude = fields.Float(allow_none=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(min=-180, max=180))
    address = fields.String(allow_none=True, validate=validate.Length(max=300))


class AttendanceCheckSchema(Schema):
    location = fields.Nested(AttendanceLocationSchema)


class AttendanceSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    date = fields.Date()
    check_in_time = fields.DateTime(allow_none=True)
    check_out_time = fields.DateTime(allow_none=True)
    status = fields.String()
    work_hours = fields.Decimal(as_string=True, places=2, allow_none=True)
    check_in_location = fields.Dict(allow_none=True)
    check_out_location = fields.Dict(allow_none=True)
    notes = fields.String(allow_none=True)
    approved_by = fields.UUID(allow_none=True)


class AttendanceQuerySchema(Schema):
    employee_id = fields.UUID()
    date_from = fields.Date(data_key="from")
    date_to = fields.Date(data_key="to")
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AttendanceCorrectionSchema(Schema):
    employee_id = fields.UUID(required=True)
    date = fields.Date(required=True)
    status = fields.String(validate=validate.OneOf(ATTENDANCE_STATUSES))
    check_in_time = fields.AwareDateTime()
    check_out_time = fields.AwareDateTime()
    note = fields.String(required=True, validate=validate.Length(min=3, max=500))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@blp.post("/check-in")
@requires("attendance", "create")
@blp.arguments(AttendanceCheckSchema, required=False)
@blp.response(201, AttendanceSchema)
def check_in(body: dict[str, Any]) -> Any:
    """Start today's attendance (present, or late after the policy's start and grace)."""
    session = db_session()
    with session.begin():
        user_id = current_user().id
        assert user_id is not None
        return attendance.check_in(session, user_id, at=_now(), zone=Ombaro.get().settings.timezone,
                                   location=(body or {}).get("location"))


@blp.post("/check-out")
@requires("attendance", "create")
@blp.arguments(AttendanceCheckSchema, required=False)
@blp.response(200, AttendanceSchema)
def check_out(body: dict[str, Any]) -> Any:
    """End today's attendance; work hours are computed (a short day becomes a half day)."""
    session = db_session()
    with session.begin():
        user_id = current_user().id
        assert user_id is not None
        return attendance.check_out(session, user_id, at=_now(), zone=Ombaro.get().settings.timezone,
                                    location=(body or {}).get("location"))


@blp.get("")
@requires("attendance", "read")
@blp.arguments(AttendanceQuerySchema, location="query", as_kwargs=True)
@blp.response(200, AttendanceSchema(many=True))
def list_attendance(limit: int, employee_id: uuid.UUID | None = None, date_from: dt.date | None = None,
                    date_to: dt.date | None = None) -> Any:
    """Days, newest first: one's own; HR and the staff department everyone's; a manager their reports'."""
    return attendance.list_days(db_session(), employee_id=employee_id, date_from=date_from, date_to=date_to,
                                limit=limit)


@blp.post("/corrections")
@requires("attendance", "update")
@blp.arguments(AttendanceCorrectionSchema)
@blp.response(200, AttendanceSchema)
def correct(body: dict[str, Any]) -> Any:
    """Set a day's status and/or times (creating the day if unmarked), with a note that is kept."""
    session = db_session()
    with session.begin():
        return attendance.correct(session, current_user().id, now=_now(), **body)
