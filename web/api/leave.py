"""Leave: employees apply and withdraw; HR approves (marking the days in attendance) or rejects with a
reason. Overlapping requests are refused. Row-level security decides whose requests a caller sees."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from ombaro import leave
from ombaro.models.hr import LEAVE_REQUEST_STATUSES, LEAVE_TYPES
from web.auth import current_user, requires
from web.extension import db_session
from web.sanitize import Blueprint
from web.schemas import Integer

blp = Blueprint("leave", __name__, url_prefix="/api/v1/leave", description="Leave requests")


class LeaveApplySchema(Schema):
    leave_type = fields.String(required=True, validate=validate.OneOf(LEAVE_TYPES))
    from_date = fields.Date(required=True)
    to_date = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=1000))
    documents = fields.List(fields.Url(), validate=validate.Length(max=10))

    @validates_schema
    def _ordered(self, body: dict[str, Any], **_: Any) -> None:
        if body.get("from_date") and body.get("to_date") and body["to_date"] < body["from_date"]:
            raise SchemaError("to_date is before from_date", "to_date")


class LeaveSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    leave_type = fields.String()
    from_date = fields.Date()
    to_date = fields.Date()
    total_days = fields.Integer(allow_none=True)
    reason = fields.String()
    status = fields.String()
    applied_date = fields.DateTime(allow_none=True)
    approved_by = fields.UUID(allow_none=True)
    approved_date = fields.DateTime(allow_none=True)
    rejection_reason = fields.String(allow_none=True)


class LeaveApprovedSchema(Schema):
    request = fields.Nested(LeaveSchema)
    days_marked = fields.Integer(metadata={"description": "working days marked as leave in attendance"})
    warnings = fields.List(fields.String())


class LeaveRejectSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class LeaveQuerySchema(Schema):
    employee_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(LEAVE_REQUEST_STATUSES))
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@blp.post("")
@requires("leave", "create")
@blp.arguments(LeaveApplySchema)
@blp.response(201, LeaveSchema)
def apply(body: dict[str, Any]) -> Any:
    """Apply for leave (refused if it overlaps a pending or approved request of yours)."""
    session = db_session()
    with session.begin():
        user_id = current_user().id
        assert user_id is not None
        return leave.apply(session, user_id, **body)


@blp.get("")
@requires("leave", "read")
@blp.arguments(LeaveQuerySchema, location="query", as_kwargs=True)
@blp.response(200, LeaveSchema(many=True))
def list_leave(limit: int, employee_id: uuid.UUID | None = None, status: str | None = None) -> Any:
    return leave.list_requests(db_session(), employee_id=employee_id, status=status, limit=limit)


@blp.post("/<uuid:request_id>/approve")
@requires("leave", "approve")
@blp.response(200, LeaveApprovedSchema)
def approve(request_id: uuid.UUID) -> Any:
    """Approve; the leave's working days are marked as leave in attendance."""
    session = db_session()
    with session.begin():
        return leave.approve(session, request_id, current_user().id)


@blp.post("/<uuid:request_id>/reject")
@requires("leave", "approve")
@blp.arguments(LeaveRejectSchema)
@blp.response(200, LeaveSchema)
def reject(body: dict[str, Any], request_id: uuid.UUID) -> Any:
    session = db_session()
    with session.begin():
        return leave.reject(session, request_id, current_user().id, body["reason"])


@blp.post("/<uuid:request_id>/cancel")
@requires("leave", "create")
@blp.response(200, LeaveSchema)
def cancel(request_id: uuid.UUID) -> Any:
    """Withdraw your own pending request."""
    session = db_session()
    with session.begin():
        return leave.cancel(session, request_id, current_user().id)
