"""What the dispatch API lists: bookings still waiting for a therapist, and assignments with their
therapists' last fixes. Read in the caller's session: row-level security decides whose rows exist."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ombaro.bookings import DISPATCHABLE, own_rows
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.dispatch import LIVE_ASSIGNMENT_STATUSES, TherapistLastPosition


def unassigned(session: Session, *, role: str | None, date: dt.date | None, limit: int) -> Sequence[Booking]:
    """Dispatchable bookings without a live assignment, soonest first (on `date` when given)."""
    live = exists().where(TherapistAssignment.booking_id == Booking.id,
                          TherapistAssignment.status.in_(LIVE_ASSIGNMENT_STATUSES))
    query = (select(Booking).where(Booking.status.in_(DISPATCHABLE), ~live)
             .order_by(Booking.booking_date, Booking.booking_time).limit(limit))
    if date is not None:
        query = query.where(Booking.booking_date == date)
    return session.scalars(own_rows(query, role)).all()


@dataclass(frozen=True)
class ListedAssignment:
    assignment: TherapistAssignment
    position: TherapistLastPosition | None  # the therapist's last fix, when asked for and visible

    @property
    def planned_km(self) -> float | None:
        """The travel distance dispatch planned for the winner (its decision record)."""
        winner = (self.assignment.dispatch_decision or {}).get("winner") or {}
        km: float | None = winner.get("distance_km")
        return km


def list_assignments(session: Session, *, date: dt.date | None, limit: int,
                     with_positions: bool) -> list[ListedAssignment]:
    """Assignments, latest date and time first (on `date` when given); `with_positions` adds each
    therapist's last fix where row-level security lets the caller see it."""
    query = (select(TherapistAssignment)
             .order_by(TherapistAssignment.assignment_date.desc(), TherapistAssignment.assignment_time.desc())
             .limit(limit))
    if date is not None:
        query = query.where(TherapistAssignment.assignment_date == date)
    rows = session.scalars(query).all()
    positions: dict[uuid.UUID, TherapistLastPosition] = {}
    if with_positions and rows:
        positions = {p.id: p for p in session.scalars(select(TherapistLastPosition).where(
            TherapistLastPosition.id.in_({r.therapist_id for r in rows})))}
    return [ListedAssignment(row, positions.get(row.therapist_id)) for row in rows]
