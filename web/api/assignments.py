"""Therapist assignments as the caller may see them (a therapist: only their own), their lifecycle
after dispatch, and the customer's rating."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import commands
from ombaro.dispatch import lifecycle, queries
from ombaro.identity.accounts import NotAllowed
from ombaro.models.bookings import TherapistAssignment
from web.auth import current_user, requires
from web.errors import NotFound
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import Integer

blp = Blueprint("assignments", __name__, url_prefix="/api/v1/assignments", description="Therapist assignments")

STEPS = tuple(sorted({target for targets in lifecycle.TRANSITIONS.values() for target in targets}))


class AssignmentSchema(Schema):
    id = fields.UUID()
    booking_id = fields.UUID()
    therapist_id = fields.UUID()
    vendor_id = fields.UUID()
    assignment_date = fields.Date()
    assignment_time = fields.Time()
    status = fields.String()
    location_address = fields.String()
    location_latitude = fields.Float(allow_none=True)
    location_longitude = fields.Float(allow_none=True)
    estimated_duration = fields.Integer()


class AssignmentListedSchema(AssignmentSchema):
    therapist_latitude = fields.Float(allow_none=True, metadata={
        "description": "the therapist's last known fix (operations and the vendor only)"})
    therapist_longitude = fields.Float(allow_none=True)
    planned_km = fields.Float(allow_none=True, metadata={
        "description": "travel distance dispatch planned for this assignment (operations and the vendor only)"})


class AssignmentDetailSchema(AssignmentSchema):
    departed_at = fields.DateTime(allow_none=True)
    arrived_at = fields.DateTime(allow_none=True)
    actual_start_time = fields.DateTime(allow_none=True)
    actual_end_time = fields.DateTime(allow_none=True)
    actual_duration = fields.Integer(allow_none=True)
    distance_traveled = fields.Decimal(as_string=True, places=2, allow_none=True,
                                       metadata={"description": "kilometres, from the therapist's pings"})
    travel_time = fields.Integer(allow_none=True)
    customer_rating = fields.Integer(allow_none=True)
    customer_feedback = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    dispatch_decision = fields.Dict(allow_none=True, metadata={
        "description": "why this therapist: score breakdown of the winner, candidates excluded per rule"})
    redispatch_job_id = fields.UUID(allow_none=True)


class AssignmentQuerySchema(Schema):
    date = fields.Date(load_default=None, metadata={"description": "only this assignment date"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))


class TransitionSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STEPS), metadata={
        "description": "acknowledged, in_transit, reached, in_progress, completed or cancelled"})
    notes = fields.String(validate=validate.Length(max=500))


class RatingSchema(Schema):
    rating = Integer(required=True, validate=validate.Range(min=1, max=5))
    feedback = fields.String(validate=validate.Length(max=2000))


def _shown(assignment: TherapistAssignment, redispatch_job_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The fields AssignmentDetailSchema dumps, read while the transaction is open. The decision
    record names the other candidates: the vendor's and operations' business, not the therapist's
    or the customer's."""
    shown = {name: getattr(assignment, name) for name in AssignmentDetailSchema().fields if name != "redispatch_job_id"}
    if current_user().role in ("customer", "therapist"):
        shown["dispatch_decision"] = None
    return {**shown, "redispatch_job_id": redispatch_job_id}


@blp.get("")
@requires("assignments", "read")
@blp.arguments(AssignmentQuerySchema, location="query", as_kwargs=True)
@blp.response(200, AssignmentListedSchema(many=True))
def list_assignments(limit: int, date: dt.date | None) -> Any:
    with_positions = current_user().role not in ("customer", "therapist")
    rows = queries.list_assignments(db_session(), date=date, limit=limit, with_positions=with_positions)
    if not with_positions:
        return [row.assignment for row in rows]
    # Row-level security decides whose positions the caller may see; the others stay empty.
    names = tuple(AssignmentSchema().fields)
    return [{**{name: getattr(row.assignment, name) for name in names},
             "therapist_latitude": row.position.latitude if row.position else None,
             "therapist_longitude": row.position.longitude if row.position else None,
             "planned_km": row.planned_km} for row in rows]


@blp.post("/<uuid:assignment_id>/status")
@requires("assignments", "update")
@blp.arguments(TransitionSchema)
@blp.response(200, AssignmentDetailSchema)
def move(body: dict[str, Any], assignment_id: uuid.UUID) -> Any:
    """One step of the assignment's life (the therapist: their own; the vendor: its therapists';
    operations: any). A step the current state does not allow is a 409 naming that state. When a
    live assignment is cancelled the booking goes back to dispatch, without that therapist."""
    session = db_session()
    user = current_user()
    with session.begin():
        moved = lifecycle.transition(session, assignment_id, body["status"], now=dt.datetime.now(dt.UTC),
                                     notes=body.get("notes"))
        job_id = None
        if moved.redispatch:
            job_id = commands.submit(
                session, "dispatch.booking", {"booking_id": str(moved.assignment.booking_id),
                                              "exclude_therapists": [str(moved.assignment.therapist_id)]},
                enqueue=Ombaro.get().enqueue, scope=user.idempotency_scope, requested_by=user.id).job.id
        return _shown(moved.assignment, job_id)


@blp.post("/<uuid:assignment_id>/rating")
@requires("bookings", "update")
@blp.arguments(RatingSchema)
@blp.response(200, AssignmentDetailSchema)
def rate(body: dict[str, Any], assignment_id: uuid.UUID) -> Any:
    """The customer rates the therapist of a completed assignment, once; the therapist's rating and
    review count follow. Only the booking's customer may (others: 403; not theirs to see: 404)."""
    user = current_user()
    session = db_session()
    with session.begin():
        visible = session.get(TherapistAssignment, assignment_id)
        if visible is None:
            raise NotFound(f"no assignment {assignment_id}")
        if visible.customer_id != user.id:
            raise NotAllowed("only the booking's customer rates its therapist")
    # The customer may not write assignments or therapists' ratings: the domain writes exactly those
    # columns on the service connection, after the check above (and its own).
    with Ombaro.get().sessions() as service, service.begin():
        rated = lifecycle.rate(service, assignment_id, customer_id=user.id, rating=body["rating"],
                               feedback=body.get("feedback"))
        return _shown(rated)
