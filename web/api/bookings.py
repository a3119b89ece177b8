"""Bookings as the caller may see them: row-level security narrows every query to their rows."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import Select, func, select

from ombaro.models.bookings import BOOKING_STATUSES, Booking, TherapistAssignment
from web.auth import current_user, requires
from web.errors import NotFound
from web.extension import db_session

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
    total_amount = fields.Decimal(as_string=True, places=2)
    created_at = fields.DateTime()


class BookingQuerySchema(Schema):
    status = fields.List(fields.String(validate=validate.OneOf(BOOKING_STATUSES)), load_default=list)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


@blp.get("")
@requires("bookings", "read")
@blp.arguments(BookingQuerySchema, location="query", as_kwargs=True)
@blp.response(200, BookingSchema(many=True))
def list_bookings(status: list[str], limit: int) -> Any:
    """The caller's bookings (a customer's own, a vendor's, a therapist's assigned ones; all for
    the desks that serve customers), newest first."""
    query = select(Booking).order_by(Booking.booking_date.desc(), Booking.booking_time.desc()).limit(limit)
    query = own_rows(query, current_user().role)
    if status:
        query = query.where(Booking.status.in_(status))
    return db_session().scalars(query).all()


def own_rows(query: Select[Any], role: str | None) -> Select[Any]:
    """Row-level security already limits the rows; saying which ones in the query lets PostgreSQL
    use the per-customer / per-vendor index instead of filtering every booking through the
    policies (docs/access.md: 2 s against 0.1 ms at a million bookings)."""
    if role == "customer":
        return query.where(Booking.customer_id == func.auth.uid())
    if role == "vendor":
        return query.where(Booking.vendor_id == func.auth.vendor_id())
    if role == "therapist":
        mine = select(TherapistAssignment.booking_id).where(
            TherapistAssignment.therapist_id == func.auth.therapist_id())
        return query.where(Booking.id.in_(mine))
    return query


@blp.get("/<uuid:booking_id>")
@requires("bookings", "read")
@blp.response(200, BookingSchema)
def get_booking(booking_id: uuid.UUID) -> Any:
    """One booking; another customer's is a 404, exactly like one that does not exist."""
    booking = db_session().get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    return booking
