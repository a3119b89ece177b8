"""What the dispatch API lists: bookings still waiting for a therapist. Read in the caller's
session: row-level security decides whose rows exist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ombaro.bookings import DISPATCHABLE, own_rows
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.dispatch import LIVE_ASSIGNMENT_STATUSES


def unassigned(session: Session, *, role: str | None, date: dt.date | None, limit: int) -> Sequence[Booking]:
    """Dispatchable bookings without a live assignment, soonest first (on `date` when given)."""
    live = exists().where(TherapistAssignment.booking_id == Booking.id,
                          TherapistAssignment.status.in_(LIVE_ASSIGNMENT_STATUSES))
    query = (select(Booking).where(Booking.status.in_(DISPATCHABLE), ~live)
             .order_by(Booking.booking_date, Booking.booking_time).limit(limit))
    if date is not None:
        query = query.where(Booking.booking_date == date)
    return session.scalars(own_rows(query, role)).all()
