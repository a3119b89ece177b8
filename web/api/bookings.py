"""Bookings as the caller may see them (row-level security narrows every query to their rows), and
what customers, vendors and the desks do with them: book, cancel, reschedule, send for dispatch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import url_for
from flask_smorest import abort
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from ombaro import bookings, commands
from ombaro.bookings import queries
from ombaro.models.bookings import BOOKING_STATUSES, BOOKING_TYPES, Booking, BookingItem
from web.auth import current_user, current_user_id, requires
from web.commanding import idempotency_key
from web.errors import NotFound
from web.extension import Ombaro, caller_rows, db_session
from web.openapi import defaults_without_query, idempotent
from web.plain import PlainDump, json_response
from web.sanitize import Blueprint
from web.schemas import GENDERS, Integer, JobSchema

blp = Blueprint("bookings", __name__, url_prefix="/api/v1/bookings", description="Bookings")


class BookingSchema(Schema):
    id = fields.UUID()
    booking_number = fields.String()
    customer_id = fields.UUID()
    vendor_id = fields.UUID()
    booking_type = fields.String()
    service_location = fields.Dict()
    booking_date = fields.Date()
    booking_time = fields.Time()
    status = fields.String()
    payment_status = fields.String()
    subtotal_amount = fields.Decimal(as_string=True, places=2)
    discount_amount = fields.Decimal(as_string=True, places=2)
    tax_amount = fields.Decimal(as_string=True, places=2)
    total_amount = fields.Decimal(as_string=True, places=2)
    promotion_id = fields.UUID(allow_none=True)
    special_instructions = fields.String(allow_none=True)
    cancellation_reason = fields.String(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    dispatch_note = fields.Dict(allow_none=True, metadata={
        "description": "the latest dispatch attempt: the therapist chosen, or how many candidates each rule "
                       "excluded"})
    created_at = fields.DateTime()


# The listing's rows go straight to JSON values (docs/benchmarks.md, issue 16): no ORM objects, no
# marshmallow per row; the same answer as BookingSchema's dump. LISTED writes typed rows; SERVED,
# what the endpoint sends, the rows with their uuid, money and JSON columns as the server's text.
LISTED = PlainDump(BookingSchema())
SERVED = PlainDump(BookingSchema(), Booking.__table__)


class BookingItemSchema(Schema):
    service_id = fields.UUID()
    duration = fields.Integer()
    quantity = fields.Integer()
    price = fields.Decimal(as_string=True, places=2)
    addon_services = fields.List(fields.Dict())
    subtotal = fields.Decimal(as_string=True, places=2)


class BookingDetailSchema(BookingSchema):
    items = fields.List(fields.Nested(BookingItemSchema))
    dispatch_job_id = fields.UUID(allow_none=True, metadata={"description": "the dispatch command, when one was sent"})


class BookingQuerySchema(Schema):
    status = fields.List(fields.String(validate=validate.OneOf(BOOKING_STATUSES)), load_default=list)
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))


# One instance for every listing: given the class, webargs builds the schema (and deep-copies its
# fields) on each request (docs/benchmarks.md, issue 16 session 3); a load keeps no state in it.
LISTING_QUERY = BookingQuerySchema()


class ServiceLocationSchema(Schema):
    address = fields.String(validate=validate.Length(min=3, max=500))
    city = fields.String(validate=validate.Length(min=2, max=100))
    latitude = fields.Float(validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(validate=validate.Range(min=-180, max=180))
    landmark = fields.String(validate=validate.Length(max=200))


class BookingItemRequestSchema(Schema):
    service_id = fields.UUID(required=True)
    duration = Integer(required=True, validate=validate.Range(min=15, max=480),
                              metadata={"description": "minutes, one of the service's duration options"})
    quantity = Integer(load_default=1, validate=validate.Range(min=1, max=4))
    addon_ids = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=5))


class CreateBookingSchema(Schema):
    vendor_id = fields.UUID(required=True)
    booking_type = fields.String(required=True, validate=validate.OneOf(BOOKING_TYPES))
    service_location = fields.Nested(ServiceLocationSchema, metadata={
        "description": "where the service happens: required for home and hotel services; a spa visit is at the vendor"})
    booking_date = fields.Date(required=True)
    booking_time = fields.Time(required=True, format="%H:%M", metadata={"description": "platform time zone, HH:MM"})
    items = fields.List(fields.Nested(BookingItemRequestSchema), required=True, validate=validate.Length(min=1, max=5))
    promotion_code = fields.String(validate=validate.Length(min=2, max=40))
    special_instructions = fields.String(validate=validate.Length(max=500))
    therapist_gender = fields.String(validate=validate.OneOf((*GENDERS, "any")), metadata={
        "description": "kept as the customer's therapist-gender preference; dispatch honours it ('any' clears it)"})


class CancelSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class RescheduleSchema(Schema):
    booking_date = fields.Date(required=True)
    booking_time = fields.Time(required=True, format="%H:%M", metadata={"description": "platform time zone, HH:MM"})


@contextmanager
def field_errors() -> Iterator[None]:
    """A domain refusal about one field becomes a 422 with that field in `errors`."""
    try:
        yield
    except bookings.BookingRejected as exc:
        abort(422, message=str(exc), messages={"json": {exc.field: [exc.message]}})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _submit_dispatch(session: Session, booking_id: uuid.UUID, *, key: str | None = None) -> commands.Submitted:
    user = current_user()
    return commands.submit(session, "dispatch.booking", {"booking_id": str(booking_id)},
                           enqueue=Ombaro.get().enqueue, key=key, scope=user.idempotency_scope,
                           requested_by=user.id)


def _detail(booking: Booking, items: list[BookingItem], job_id: uuid.UUID | None) -> dict[str, Any]:
    """What BookingDetailSchema dumps: the booking's fields, its items and the dispatch job."""
    shown = {name: getattr(booking, name) for name in BookingSchema().fields}
    return {**shown, "items": items, "dispatch_job_id": job_id}


@blp.get("")
@requires("bookings", "read")
@defaults_without_query(LISTING_QUERY)
@blp.arguments(LISTING_QUERY, location="query", as_kwargs=True)
@blp.response(200, BookingSchema(many=True))
def list_bookings(status: list[str], limit: int) -> Any:
    """The caller's bookings (a customer's own, a vendor's, a therapist's assigned ones; all for
    the desks that serve customers), newest first."""
    query = queries.row_listing(SERVED.columns, current_user().role, bool(status), SERVED.as_text)
    rows = caller_rows(query, {"limit": limit, "statuses": status} if status else {"limit": limit})
    return json_response(SERVED, rows)  # what BookingSchema(many=True) dumps (tests/bookings/test_listing.py)


@blp.get("/<uuid:booking_id>")
@requires("bookings", "read")
@blp.response(200, BookingSchema)
def get_booking(booking_id: uuid.UUID) -> Any:
    """One booking; another customer's is a 404, exactly like one that does not exist."""
    booking = db_session().get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    return booking


@blp.post("")
@requires("bookings", "create")
@blp.arguments(CreateBookingSchema)
@blp.response(201, BookingDetailSchema, headers={"Location": {
    "description": "the booking's URL (`GET /api/v1/bookings/{booking_id}`)", "schema": {"type": "string"}}})
def create_booking(body: dict[str, Any]) -> Any:
    """Book: prices come from the catalogue (never from the request), the promotion is checked and
    recorded once, the time must fit the vendor's hours. The booking is confirmed and sent to
    dispatch in the same transaction (`dispatch_job_id`).

    Runs on the service connection (ombaro/bookings/service.py says why); the customer is the caller."""
    request = bookings.BookingRequest(
        vendor_id=body["vendor_id"], booking_type=body["booking_type"], booking_date=body["booking_date"],
        booking_time=body["booking_time"],
        items=tuple(bookings.ItemRequest(i["service_id"], i["duration"], i["quantity"], tuple(i["addon_ids"]))
                    for i in body["items"]),
        service_location=body.get("service_location"), promotion_code=body.get("promotion_code"),
        special_instructions=body.get("special_instructions"), therapist_gender=body.get("therapist_gender"))
    ombaro = Ombaro.get()
    with field_errors(), ombaro.sessions() as session, session.begin():
        created = bookings.create_booking(session, current_user_id(), request, zone=ombaro.settings.timezone,
                                          now=_now())
        job = _submit_dispatch(session, created.booking.id).job
        return _detail(created.booking, created.items, job.id), 201, {
            "Location": url_for("bookings.get_booking", booking_id=created.booking.id)}


@blp.post("/<uuid:booking_id>/cancel")
@requires("bookings", "update")
@blp.arguments(CancelSchema)
@blp.response(200, BookingSchema)
def cancel_booking(body: dict[str, Any], booking_id: uuid.UUID) -> Any:
    """Cancel (the customer, the vendor, or customer care), with a reason. Cancelling a booking that
    is in progress, completed or already cancelled is a 409 naming its state."""
    session = db_session()
    with session.begin():
        return bookings.cancel_booking(session, booking_id, actor_id=current_user_id(), reason=body["reason"],
                                       now=_now())


@blp.post("/<uuid:booking_id>/reschedule")
@requires("bookings", "update")
@blp.arguments(RescheduleSchema)
@blp.response(200, BookingDetailSchema)
def reschedule_booking(body: dict[str, Any], booking_id: uuid.UUID) -> Any:
    """Move to another date or time inside the vendor's hours. Its therapist is released and, unless
    the booking is still pending, it goes back to dispatch (`dispatch_job_id`)."""
    session = db_session()
    with field_errors(), session.begin():
        booking = bookings.reschedule_booking(session, booking_id, booking_date=body["booking_date"],
                                              booking_time=body["booking_time"],
                                              zone=Ombaro.get().settings.timezone, now=_now())
        job_id = _submit_dispatch(session, booking.id).job.id if booking.status == "rescheduled" else None
        return _detail(booking, queries.items_of(session, booking.id), job_id)


@blp.post("/<uuid:booking_id>/dispatch")
@requires("dispatch", "create")
@idempotent
@blp.response(202, JobSchema)
def dispatch_booking(booking_id: uuid.UUID) -> Any:
    """Find a therapist now (a pending booking is confirmed first): 202 with the dispatch job, whose
    result names the therapist or explains, per rule, why nobody fits."""
    session = db_session()
    with session.begin():
        bookings.confirm_for_dispatch(session, booking_id)
        submitted = _submit_dispatch(session, booking_id, key=idempotency_key())
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers
