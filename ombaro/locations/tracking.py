"""A customer's view of their therapist on the way: Redis's fresh fix, else the last-position
table, and the distance and drive time to the booking's place."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.geo import Point, drive_minutes, haversine_km
from ombaro.locations.positions import location_key
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.dispatch import TherapistLastPosition

log = logging.getLogger(__name__)


class NotOnTheWay(Exception):
    """The booking's therapist is not in transit (409, naming the assignment's state)."""


@dataclass(frozen=True)
class Tracking:
    booking_id: uuid.UUID
    assignment_id: uuid.UUID
    therapist_id: uuid.UUID
    status: str
    latitude: float | None
    longitude: float | None
    recorded_at: dt.datetime | None
    distance_km: float | None
    eta_minutes: int | None
    source: str  # redis | database | none


def track_booking(session: Session, redis: Any, booking_id: uuid.UUID, *, now: dt.datetime) -> Tracking:
    """Where the booking's therapist is and how far away, while they are on the way. Row-level
    security decides who sees the booking and the assignment (another customer: not found)."""
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise LookupError(f"no booking {booking_id}")
    assignment = session.scalars(
        select(TherapistAssignment).where(TherapistAssignment.booking_id == booking_id)
        .order_by(TherapistAssignment.created_at.desc()).limit(1)).first()
    if assignment is None or assignment.status != "in_transit":
        state = assignment.status if assignment else "not assigned"
        raise NotOnTheWay(f"the therapist of booking {booking.booking_number} is not on the way "
                          f"(assignment is {state})")
    point, stamp, source = None, None, "none"
    try:
        raw = redis.get(location_key(assignment.therapist_id)) if redis is not None else None
    except Exception as exc:
        log.warning("Redis unavailable for tracking, using the database: %s", exc)
        raw = None
    if raw is not None:
        data = json.loads(raw)
        point, stamp, source = Point(data["latitude"], data["longitude"]), dt.datetime.fromisoformat(
            data["timestamp"]), "redis"
    else:
        last = session.get(TherapistLastPosition, assignment.therapist_id)
        if last is not None:
            point, stamp, source = Point(float(last.latitude), float(last.longitude)), last.recorded_at, "database"
    destination = None
    if assignment.location_latitude is not None and assignment.location_longitude is not None:
        destination = Point(float(assignment.location_latitude), float(assignment.location_longitude))
    distance = haversine_km(point, destination) if point and destination else None
    return Tracking(booking_id, assignment.id, assignment.therapist_id, assignment.status,
                    point.latitude if point else None, point.longitude if point else None, stamp,
                    None if distance is None else round(distance, 3),
                    None if distance is None else drive_minutes(distance), source)
