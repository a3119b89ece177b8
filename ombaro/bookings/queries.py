"""Bookings as the API lists them. Read in the caller's session: row-level security decides whose
rows exist; `own_rows` says which in the query as well, so PostgreSQL can use an index."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ombaro.models.bookings import Booking, BookingItem, TherapistAssignment


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


def list_bookings(session: Session, *, role: str | None, statuses: Sequence[str], limit: int) -> Sequence[Booking]:
    """The bookings a caller of `role` sees, latest date and time first, in any of `statuses` (all when empty)."""
    query = select(Booking).order_by(Booking.booking_date.desc(), Booking.booking_time.desc()).limit(limit)
    query = own_rows(query, role)
    if statuses:
        query = query.where(Booking.status.in_(statuses))
    return session.scalars(query).all()


def items_of(session: Session, booking_id: uuid.UUID) -> list[BookingItem]:
    """The booking's items."""
    return list(session.scalars(select(BookingItem).where(BookingItem.booking_id == booking_id)))
