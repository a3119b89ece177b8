"""Dispatch's commands (docs/dispatch.md): one booking, or a vendor's or city's day at once. Both run
on the `dispatch` queue, never behind bulk work."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ombaro import commands
from ombaro.locations import redis_client

# --- dispatch.booking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchBooking(commands.Params):
    booking_id: uuid.UUID
    exclude_therapists: list[uuid.UUID] | None = None


class DispatchBookingSchema(commands.ParamsSchema):
    model = DispatchBooking
    booking_id = fields.UUID(required=True)
    exclude_therapists = fields.List(fields.UUID(), validate=validate.Length(max=1000),
                                     metadata={"description": "therapists who declined or were moved off it"})


class DispatchBookingResultSchema(Schema):
    """The decision, with its explanation (candidates and their scores) when one was made."""

    outcome = fields.String(metadata={"enum": ["assigned", "unassigned", "already_assigned", "skipped"]})
    booking_id = fields.UUID()
    booking_number = fields.String()
    assignment_id = fields.UUID()
    therapist_id = fields.UUID()
    reason = fields.String()
    decision = fields.Dict()


@functools.cache
def _positions_redis(url: str) -> redis.Redis:
    """One client (and connection pool) per worker process: a new client per job paid a TCP
    connect on every dispatch (redis-py's pool is thread-safe and reopens after a fork)."""
    return redis_client(url)


def dispatch_booking(params: DispatchBooking, ctx: commands.Context) -> dict[str, Any]:
    from ombaro.dispatch import service  # the solver's imports take seconds: only where a job needs them

    settings = ctx.env.settings
    return service.dispatch_booking(ctx.session, params.booking_id, zone=settings.timezone,
                                    redis=_positions_redis(settings.redis_url),
                                    exclude=frozenset(params.exclude_therapists or ()), job_id=ctx.job.id)


# --- dispatch.batch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchBatch(commands.Params):
    date: dt.date
    vendor_id: uuid.UUID | None = None
    city: str | None = None


class DispatchBatchSchema(commands.ParamsSchema):
    model = DispatchBatch
    date = fields.Date(required=True, metadata={"description": "the bookings' date (platform zone)"})
    vendor_id = fields.UUID(metadata={"description": "one vendor's bookings (a vendor: its own)"})
    city = fields.String(validate=validate.Length(min=2, max=100), metadata={"description": "or a city's"})

    @validates_schema
    def one_scope(self, data: dict[str, Any], **_: Any) -> None:
        if ("vendor_id" in data) == ("city" in data):
            raise ValidationError("Give either vendor_id or city.", "_schema")


class DispatchBatchResultSchema(Schema):
    date = fields.Date()
    vendor_id = fields.UUID(allow_none=True)
    city = fields.String(allow_none=True)
    bookings = fields.Integer()
    therapists = fields.Integer()
    plan = fields.String(metadata={"description": "the method that chose the plan"})
    assigned = fields.Integer()
    unassigned = fields.Integer()
    taken_meanwhile = fields.Integer()
    total_travel_km = fields.Float()
    greedy_total_travel_km = fields.Float()
    travel_lower_bound_km = fields.Float(metadata={
        "description": "no plan placing the same bookings travels less (docs/dispatch.md, batch matching)"})


def dispatch_batch(params: DispatchBatch, ctx: commands.Context) -> dict[str, Any]:
    from ombaro.dispatch import service

    settings = ctx.env.settings
    return service.dispatch_batch(ctx.session, day=params.date, zone=settings.timezone, vendor_id=params.vendor_id,
                                  city=params.city, redis=_positions_redis(settings.redis_url), job_id=ctx.job.id,
                                  progress=ctx.progress)


commands.declare(
    commands.Command(
        kind="dispatch.booking", params=DispatchBookingSchema, handler=dispatch_booking, queue="dispatch",
        permission=("dispatch", "create"), result=DispatchBookingResultSchema,
        description="Assign one booking to the best available therapist.",
        example={"booking_id": "00000000-0000-0000-0000-000000000001"}),
    commands.Command(
        kind="dispatch.batch", params=DispatchBatchSchema, handler=dispatch_batch, queue="dispatch",
        permission=("dispatch", "create"), result=DispatchBatchResultSchema,
        description="Plan a vendor's or a city's day at once (least total travel).",
        example={"date": "2026-06-01", "city": "Mumbai"}),
)
