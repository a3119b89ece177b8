"""Schedules: list with their next firing, enable/disable, change the trigger, run now.

Row-level security (migration 0009, docs/security.md) shows a schedule only to staff who may start
the kind of job it fires, and lets it be changed or run only by those who also hold
`schedules:update`: any other schedule is a 404, as if it did not exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import url_for
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.orm import Session

from ombaro import schedules
from ombaro.models.jobs import Schedule
from web.auth import current_user, requires
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import Integer, JobSchema, JsonObject

blp = Blueprint("schedules", __name__, url_prefix="/api/v1/schedules", description="Periodic commands")


class ScheduleSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    kind = fields.String()
    params = fields.Dict()
    cron = fields.String(allow_none=True)
    interval_seconds = fields.Integer(allow_none=True)
    timezone = fields.String()
    enabled = fields.Boolean()
    overlap_policy = fields.String()
    misfire_policy = fields.String()
    last_fired_for = fields.DateTime(allow_none=True)
    next_fire_time = fields.Method("_next", allow_none=True, metadata={"description": "null when disabled"})

    def _next(self, schedule: Schedule) -> str | None:
        when = schedules.next_fire_time(schedule)
        return when.isoformat() if when else None


class TriggerSchema(Schema):
    cron = fields.String(validate=validate.Length(min=9, max=100), metadata={"example": "0 2 * * 1"})
    interval_seconds = Integer(validate=validate.Range(min=1, max=31 * 86400))
    timezone = fields.String(validate=validate.Length(min=1, max=64), metadata={"example": "Asia/Kolkata"})
    params = JsonObject(metadata={
        "description": "the params each firing submits, checked against the kind's params schema (422 with an "
                       "error per field, nothing saved); see the `*Params` schemas"})

    @validates_schema
    def one_trigger(self, data: dict[str, Any], **_: Any) -> None:
        if "params" in data and "cron" not in data and "interval_seconds" not in data and "timezone" not in data:
            return  # only the params change
        if ("cron" in data) == ("interval_seconds" in data):
            raise ValidationError("give either cron or interval_seconds", field_name="cron")


@blp.get("")
@requires("schedules", "read")
@blp.response(200, ScheduleSchema(many=True))
def list_schedules() -> Any:
    return schedules.list_schedules(db_session())


def _change(schedule_id: uuid.UUID, change: Callable[[Session, uuid.UUID], Schedule]) -> Schedule:
    session = db_session()
    with session.begin():
        schedule = change(session, schedule_id)
    return schedule


@blp.post("/<uuid:schedule_id>/enable")
@requires("schedules", "update")
@blp.response(200, ScheduleSchema)
def enable(schedule_id: Any) -> Any:
    return _change(schedule_id, lambda s, ref: schedules.set_enabled(s, ref, True))


@blp.post("/<uuid:schedule_id>/disable")
@requires("schedules", "update")
@blp.response(200, ScheduleSchema)
def disable(schedule_id: Any) -> Any:
    return _change(schedule_id, lambda s, ref: schedules.set_enabled(s, ref, False))


@blp.patch("/<uuid:schedule_id>")
@requires("schedules", "update")
@blp.arguments(TriggerSchema)
@blp.response(200, ScheduleSchema)
def change_trigger(body: dict[str, Any], schedule_id: Any) -> Any:
    """A new crontab line (minute hour day month weekday, Sunday = 0) or interval, and/or new params
    (refused unless the kind's params schema accepts them); the scheduler picks it up at its next
    reload. Enabling a schedule checks its params too."""
    params = body.pop("params", None)

    def change(session: Any, ref: Any) -> Schedule:
        schedule = schedules.set_trigger(session, ref, **body) if body else schedules.get_schedule(session, ref)
        return schedules.set_params(session, ref, params) if params is not None else schedule

    return _change(schedule_id, change)


@blp.post("/<uuid:schedule_id>/run")
@requires("schedules", "update")
@blp.response(202, JobSchema)
def run_now(schedule_id: Any) -> Any:
    """Fire now, outside the schedule's times; 409 while its previous run is still going."""
    session = db_session()
    with session.begin():
        job = schedules.run_now(session, schedule_id, enqueue=Ombaro.get().enqueue, requested_by=current_user().id)
    return job, 202, {"Location": url_for("jobs.get_job", job_id=job.id)}
