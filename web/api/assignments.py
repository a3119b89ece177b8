"""Therapist assignments as the caller may see them (a therapist: only their own)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ombaro.models.bookings import TherapistAssignment
from web.auth import requires
from web.extension import db_session

blp = Blueprint("assignments", __name__, url_prefix="/api/v1/assignments", description="Therapist assignments")


class AssignmentSchema(Schema):
    id = fields.UUID()
    booking_id = fields.UUID()
    therapist_id = fields.UUID()
    vendor_id = fields.UUID()
    assignment_date = fields.Date()
    assignment_time = fields.Time()
    status = fields.String()
    location_address = fields.String()
    estimated_duration = fields.Integer()


class AssignmentQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


@blp.get("")
@requires("assignments", "read")
@blp.arguments(AssignmentQuerySchema, location="query", as_kwargs=True)
@blp.response(200, AssignmentSchema(many=True))
def list_assignments(limit: int) -> Any:
    return db_session().scalars(
        select(TherapistAssignment)
        .order_by(TherapistAssignment.assignment_date.desc(), TherapistAssignment.assignment_time.desc())
        .limit(limit)).all()
