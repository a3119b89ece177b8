"""Loading what the rules need from the database (and live positions from Redis), set-based: one
query per kind of data for however many bookings and therapists, never a query per therapist."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, overload
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro import locations
from ombaro.bookings import booking_minutes
from ombaro.dispatch.rules import Candidate, Engagement, Need, Shift
from ombaro.geo import Point

log = logging.getLogger(__name__)

LIVE = ("assigned", "acknowledged", "in_transit", "reached", "in_progress")


def point_of(place: dict[str, Any] | None) -> Point | None:
    """A {latitude, longitude} mapping (service location, business address) as a Point."""
    if not place:
        return None
    try:
        latitude, longitude = float(place["latitude"]), float(place["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return Point(latitude, longitude)


@overload
def _minutes(value: dt.time) -> int: ...
@overload
def _minutes(value: dt.time | None) -> int | None: ...
def _minutes(value: dt.time | None) -> int | None:
    return None if value is None else value.hour * 60 + value.minute


def _shift(row: Any) -> Shift | None:
    start_time: dt.time | None = row.start_time
    if start_time is None:
        return None
    start = _minutes(start_time)
    end = _minutes(row.end_time) or 0
    if end <= start:  # a shift ending at midnight is stored as 00:00
        end += 24 * 60
    return Shift(start, end, row.is_available is not False, _minutes(row.break_start),
                 _minutes(row.break_end))


def load_needs(session: Session, booking_ids: Sequence[uuid.UUID], *, zone: str,
               declined: dict[uuid.UUID, frozenset[uuid.UUID]] | None = None) -> list[Need]:
    if not booking_ids:
        return []
    ids = list(booking_ids)
    rows = session.execute(text(
        "SELECT b.id, b.booking_number, b.vendor_id, b.customer_id, b.booking_date, b.booking_time, "
        "b.service_location, v.business_address, c.preferred_therapists, c.preferred_therapist_gender "
        "FROM bookings AS b JOIN vendors AS v ON v.id = b.vendor_id "
        "LEFT JOIN customers AS c ON c.id = b.customer_id WHERE b.id = ANY(:ids)"), {"ids": ids}).all()
    items: dict[uuid.UUID, list[Any]] = defaultdict(list)
    codes: dict[uuid.UUID, set[str]] = defaultdict(set)
    for item in session.execute(text(
            "SELECT bi.booking_id, bi.service_id, s.code, bi.duration, bi.quantity, bi.addon_services "
            "FROM booking_items AS bi JOIN services AS s ON s.id = bi.service_id WHERE bi.booking_id = ANY(:ids) "
            "ORDER BY bi.booking_id, bi.created_at, bi.id"), {"ids": ids}):
        items[item.booking_id].append(item)
        codes[item.booking_id].add(item.code)
    addon_ids = {str(a.get("id")) for lines in items.values() for line in lines for a in (line.addon_services or [])
                 if isinstance(a, dict) and a.get("duration") is None and a.get("id")}
    addon_minutes: dict[str, int] = {}
    if addon_ids:
        addon_minutes = {str(i): d for i, d in session.execute(text(
            "SELECT id, duration FROM addon_services WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": sorted(addon_ids)}).all()}
    tz = ZoneInfo(zone)
    needs = []
    for row in rows:
        starts = dt.datetime.combine(row.booking_date, row.booking_time, tzinfo=tz).astimezone(dt.UTC)
        minutes = booking_minutes(items.get(row.id, []), addon_minutes) or 60
        needs.append(Need(
            booking_id=row.id, booking_number=row.booking_number, vendor_id=row.vendor_id,
            customer_id=row.customer_id, local_date=row.booking_date,
            start_minute=row.booking_time.hour * 60 + row.booking_time.minute, minutes=minutes,
            starts_at=starts, location=point_of(row.service_location) or point_of(row.business_address),
            service_codes=frozenset(codes.get(row.id, ())), gender=row.preferred_therapist_gender,
            preferred=frozenset(row.preferred_therapists or ()),
            declined=(declined or {}).get(row.id, frozenset()),
            service_id=items[row.id][0].service_id if items.get(row.id) else None,
            address=str((row.service_location or {}).get("address") or "")))
    return needs


def load_candidates(session: Session, vendor_ids: Iterable[uuid.UUID], day: dt.date, *,
                    window: tuple[dt.datetime, dt.datetime], now: dt.datetime,
                    fresh_seconds: int = locations.LIVE_TTL_SECONDS) -> list[Candidate]:
    """The therapists of these vendors with their shift on `day`, leave, live assignments around
    `window`, assignment count that day and position: the last-position table's when fresh, else
    their vendor's address (`apply_live` then lays Redis's fresher fixes over it)."""
    vendors = sorted(set(vendor_ids))
    if not vendors:
        return []
    weekday = (day.weekday() + 1) % 7  # 0 = Sunday
    rows = session.execute(text(
        "SELECT t.id, t.vendor_id, t.name, t.user_id, t.gender, t.status, t.specialization, t.rating, "
        "s.start_time, s.end_time, s.is_available, s.break_start, s.break_end, "
        "EXISTS (SELECT 1 FROM therapist_leaves AS l WHERE l.therapist_id = t.id AND l.status = 'approved' "
        "        AND :day BETWEEN l.start_date AND l.end_date) AS on_leave, "
        "(SELECT count(*) FROM therapist_assignments AS a WHERE a.therapist_id = t.id "
        " AND a.assignment_date = :day AND a.status <> 'cancelled') AS assignments_today, "
        # The vendor's address as text, decoded once per vendor below, not once per therapist.
        "p.latitude AS live_latitude, p.longitude AS live_longitude, p.recorded_at, "
        "v.business_address::text AS business_address "
        "FROM therapists AS t JOIN vendors AS v ON v.id = t.vendor_id "
        "LEFT JOIN therapist_schedules AS s ON s.therapist_id = t.id AND s.day_of_week = :weekday "
        "LEFT JOIN therapist_last_positions AS p ON p.id = t.id "
        # The vendors by their key too: with the condition on t alone every vendor was read and sorted.
        "WHERE t.vendor_id = ANY(:vendors) AND v.id = ANY(:vendors) ORDER BY t.vendor_id, t.id"),
        {"day": day, "weekday": weekday, "vendors": vendors}).all()
    # One probe of the exclusion constraint's index (therapist, busy period) per therapist: the plan
    # stays right when the statement is prepared and planned generically (a day's assignments of
    # every vendor would otherwise be read and filtered).
    ids = [row.id for row in rows]
    engagements: dict[uuid.UUID, list[Engagement]] = defaultdict(list)
    for row in session.execute(text(
            "SELECT a.id, a.therapist_id, lower(a.busy_period) AS starts_at, upper(a.busy_period) AS busy_until, "
            "a.estimated_duration, a.location_latitude, a.location_longitude "
            "FROM unnest(CAST(:ids AS uuid[])) AS t (id) JOIN LATERAL (SELECT * FROM therapist_assignments AS x "
            "  WHERE x.therapist_id = t.id AND x.busy_period && tstzrange(:lo, :hi) "
            "  AND x.status IN ('assigned', 'acknowledged', 'in_transit', 'reached', 'in_progress')) AS a ON true"),
            {"ids": ids, "lo": window[0], "hi": window[1]}):
        place = None if row.location_latitude is None else Point(float(row.location_latitude),
                                                                 float(row.location_longitude))
        engagements[row.therapist_id].append(Engagement(
            row.starts_at, row.starts_at + dt.timedelta(minutes=row.estimated_duration), row.busy_until, place, row.id))
    fresh_after = now - dt.timedelta(seconds=fresh_seconds)
    addresses: dict[uuid.UUID, Point | None] = {}
    candidates = []
    for row in rows:
        position, source = None, "live"
        if row.recorded_at is not None and row.recorded_at >= fresh_after:
            position = Point(float(row.live_latitude), float(row.live_longitude))
        if position is None:
            if row.vendor_id not in addresses:
                address = row.business_address
                addresses[row.vendor_id] = point_of(None if address is None else json.loads(address))
            position, source = addresses[row.vendor_id], "vendor_address"
        candidates.append(Candidate(
            therapist_id=row.id, vendor_id=row.vendor_id, name=row.name, status=row.status,
            codes=frozenset(row.specialization or ()), rating=float(row.rating or Decimal(0)), gender=row.gender,
            user_id=row.user_id, shift=_shift(row), on_leave=row.on_leave, position=position,
            position_source=source if position is not None else "unknown",
            engagements=sorted(engagements.get(row.id, []), key=lambda e: e.starts_at),
            assignments_today=int(row.assignments_today)))
    return candidates


def apply_live(candidates: list[Candidate], live: dict[uuid.UUID, Point]) -> None:
    """A fresh fix from Redis wins over the table's (it may be a few seconds newer)."""
    for candidate in candidates:
        point = live.get(candidate.therapist_id)
        if point is not None:
            candidate.position, candidate.position_source = point, "live"


def engagements_of(session: Session, therapist_id: uuid.UUID, window: tuple[dt.datetime, dt.datetime]
                   ) -> list[Engagement]:
    """A therapist's live assignments around `window`, read again under their dispatch lock."""
    found = []
    for row in session.execute(text(
            "SELECT id, lower(busy_period) AS starts_at, upper(busy_period) AS busy_until, estimated_duration, "
            "location_latitude, location_longitude FROM therapist_assignments WHERE therapist_id = :t "
            "AND status = ANY(:live) AND busy_period && tstzrange(:lo, :hi)"),
            {"t": therapist_id, "live": list(LIVE), "lo": window[0], "hi": window[1]}):
        place = None if row.location_latitude is None else Point(float(row.location_latitude),
                                                                 float(row.location_longitude))
        found.append(Engagement(row.starts_at, row.starts_at + dt.timedelta(minutes=row.estimated_duration),
                                row.busy_until, place, row.id))
    return found


def live_positions(redis: Any, therapist_ids: Sequence[uuid.UUID], *, vendor_id: uuid.UUID | None = None,
                   near: Point | None = None) -> dict[uuid.UUID, Point]:
    """Fresh positions from Redis: a radius search of the vendor's GEO index around `near` (single
    dispatch), else the location keys of the given therapists (batch). {} when Redis is away."""
    if redis is None:
        return {}
    try:
        if vendor_id is not None and near is not None:
            found = locations.fresh_near(redis, vendor_id, near)
        else:
            found = locations.fresh_positions(redis, therapist_ids)
    except Exception as exc:  # Redis down or restarted: the last-position table stands in
        log.warning("live positions unavailable from Redis, using the database: %s", exc)
        return {}
    wanted = set(therapist_ids)
    return {therapist: point for therapist, point in found.items() if therapist in wanted}
