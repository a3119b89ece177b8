"""An assignment after dispatch: acknowledged, in transit, reached, in progress, completed (or
cancelled), and the customer's rating. The booking follows its assignments and the customer is told
at each step by the database (migration 0004); this module validates the step and records what it
measures: departure and arrival times, the actual start, end and duration, the distance travelled
(from the therapist's pings)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ombaro.bookings import InvalidTransition
from ombaro.geo import Point, path_km
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.vendors import Therapist, TherapistLocation

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "assigned": ("acknowledged", "cancelled"),
    "acknowledged": ("in_transit", "in_progress", "cancelled"),  # in_progress: a spa visit, no travel
    "in_transit": ("reached", "cancelled"),
    "reached": ("in_progress", "cancelled"),
    "in_progress": ("completed",),
    "completed": (),
    "cancelled": (),
}
MAX_ACCURACY_M = 100  # fixes less precise than this are left out of the distance travelled


class AssignmentNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Transition:
    assignment: TherapistAssignment
    previous: str
    redispatch: bool  # cancelled while its booking still wants a therapist


def _minutes_between(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, math.ceil((end - start).total_seconds() / 60 - 1e-9))


def distance_travelled_km(session: Session, therapist_id: uuid.UUID, start: dt.datetime, end: dt.datetime
                          ) -> Decimal:
    """Length of the path through the therapist's pings between `start` and `end`, kilometres to
    two places (half-up), leaving out imprecise fixes."""
    rows = session.execute(
        select(TherapistLocation.latitude, TherapistLocation.longitude)
        .where(TherapistLocation.therapist_id == therapist_id, TherapistLocation.timestamp >= start,
               TherapistLocation.timestamp <= end,
               func.coalesce(TherapistLocation.accuracy, 0) <= MAX_ACCURACY_M)
        .order_by(TherapistLocation.timestamp)).all()
    km = path_km([Point(float(lat), float(lon)) for lat, lon in rows])
    return Decimal(str(km)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def transition(session: Session, assignment_id: uuid.UUID, target: str, *, now: dt.datetime,
               notes: str | None = None) -> Transition:
    """Move an assignment one step. Runs as the caller: row-level security lets a therapist move
    only their own, a vendor its therapists', operations any; others find nothing (404)."""
    assignment = session.scalars(select(TherapistAssignment).where(TherapistAssignment.id == assignment_id)
                                 .with_for_update()).first()
    if assignment is None:
        raise AssignmentNotFound(f"no assignment {assignment_id}")
    current = assignment.status
    if target not in TRANSITIONS.get(current, ()):
        allowed = ", ".join(TRANSITIONS.get(current, ())) or "nothing (it is final)"
        raise InvalidTransition(f"assignment is {current}: it can move to {allowed}", current=current)
    booking = session.get(Booking, assignment.booking_id)
    if booking is not None and booking.status in ("cancelled", "completed") and target != "cancelled":
        raise InvalidTransition(f"booking {booking.booking_number} is {booking.status}", current=booking.status)

    if target == "in_transit":
        assignment.departed_at = now
    elif target == "reached":
        assignment.arrived_at = now
        if assignment.departed_at is not None:
            assignment.travel_time = _minutes_between(assignment.departed_at, now)
            assignment.distance_traveled = distance_travelled_km(session, assignment.therapist_id,
                                                                 assignment.departed_at, now)
    elif target == "in_progress":
        assignment.actual_start_time = now
    elif target == "completed":
        started = assignment.actual_start_time or now
        assignment.actual_end_time = now
        assignment.actual_duration = _minutes_between(started, now)
        if assignment.departed_at is not None and assignment.distance_traveled is None:
            assignment.distance_traveled = distance_travelled_km(
                session, assignment.therapist_id, assignment.departed_at, assignment.arrived_at or started)
    if notes:
        assignment.notes = f"{assignment.notes}\n{notes}" if assignment.notes else notes
    assignment.status = target
    session.flush()
    redispatch = target == "cancelled" and booking is not None and booking.status == "assigned"
    return Transition(assignment, current, redispatch)


class AlreadyRated(InvalidTransition):
    pass


def rate(session: Session, assignment_id: uuid.UUID, *, customer_id: uuid.UUID, rating: int,
         feedback: str | None) -> TherapistAssignment:
    """The customer rates a completed assignment once; the therapist's rating becomes the mean of
    all their rated assignments (two places, half-up) and review count the number rated, computed
    from the rows, not accumulated, so concurrent ratings cannot lose one.

    Runs on the service connection: a customer may neither write assignments nor therapists'
    ratings; this function writes exactly those columns after checking the caller is the customer."""
    assignment = session.scalars(select(TherapistAssignment).where(TherapistAssignment.id == assignment_id)
                                 .with_for_update()).first()
    if assignment is None or assignment.customer_id != customer_id:
        raise AssignmentNotFound(f"no assignment {assignment_id}")
    if assignment.status != "completed":
        raise InvalidTransition(f"assignment is {assignment.status}: only a completed one is rated",
                                current=assignment.status)
    if assignment.customer_rating is not None:
        raise AlreadyRated("this assignment has already been rated", current=assignment.status)
    assignment.customer_rating = rating
    assignment.customer_feedback = feedback
    session.flush()
    # Lock the therapist first, so the aggregate below reads every rating committed before us.
    session.execute(select(Therapist.id).where(Therapist.id == assignment.therapist_id).with_for_update())
    mean, count = session.execute(
        select(func.round(func.avg(TherapistAssignment.customer_rating), 2), func.count())
        .where(TherapistAssignment.therapist_id == assignment.therapist_id,
               TherapistAssignment.customer_rating.is_not(None))).one()
    session.execute(update(Therapist).where(Therapist.id == assignment.therapist_id).values(
        rating=mean, total_reviews=count, updated_at=func.now()))
    return assignment
