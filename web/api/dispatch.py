"""Dispatch for operations and vendors: a whole day at once, and what is still unassigned."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import url_for
from marshmallow import Schema, fields, validate

from ombaro import commands
from ombaro.dispatch import commands as dispatch_commands
from ombaro.dispatch import queries
from ombaro.identity import accounts
from web.api.bookings import BookingSchema
from web.auth import current_user, current_user_id, requires
from web.commanding import idempotency_key
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import Integer, JobSchema

blp = Blueprint("dispatch", __name__, url_prefix="/api/v1/dispatch", description="Dispatch matching")


class BatchSchema(dispatch_commands.DispatchBatchSchema):
    """The `dispatch.batch` params: a day, and a vendor or a city."""


class UnassignedQuerySchema(Schema):
    date = fields.Date(load_default=None)
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=500))


@blp.post("/batch")
@requires("dispatch", "create")
@idempotent
@blp.arguments(BatchSchema)
@blp.response(202, JobSchema)
def batch(body: dispatch_commands.DispatchBatch) -> Any:
    """Assign all unassigned confirmed bookings of a vendor (or a city) on a date at once, minimising
    total travel under the dispatch rules. The job's result compares the total with what greedy
    one-by-one matching would have travelled on the same input."""
    user = current_user()
    if user.role == "vendor":
        with Ombaro.get().sessions() as session:
            own = accounts.vendor_of(session, current_user_id())
        if body.city is not None or body.vendor_id != own:
            raise accounts.NotAllowed("a vendor dispatches its own bookings: give its vendor_id")
    session = db_session()
    with session.begin():
        submitted = commands.submit(session, "dispatch.batch", body, enqueue=Ombaro.get().enqueue,
                                    key=idempotency_key(), scope=user.idempotency_scope, requested_by=user.id)
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers


@blp.get("/unassigned")
@requires("dispatch", "read")
@blp.arguments(UnassignedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, BookingSchema(many=True))
def unassigned(date: dt.date | None, limit: int) -> Any:
    """Confirmed bookings with no therapist, soonest first, each with its latest dispatch note (how
    many candidates each rule excluded). A vendor sees its own."""
    return queries.unassigned(db_session(), role=current_user().role, date=date, limit=limit)
