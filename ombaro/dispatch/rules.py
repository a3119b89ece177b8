"""Who may take a booking and who should: the eligibility rules and the ranking, as pure functions
over plain data (loaded by `candidates`), so single dispatch, batch matching and the tests all use
exactly the same rules."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ombaro.geo import TURNAROUND_MINUTES, Point, drive_minutes, gap_needed, haversine_km

# Evaluated in this order; a candidate is counted against the first rule that excludes it, so the
# counts add up to the pool minus the eligible (the funnel operations read in the decision).
RULES: tuple[str, ...] = (
    "declined",  # released this booking before (a therapist who turned it down is not asked again)
    "status",  # not active
    "gender",  # the customer's therapist-gender preference
    "specialisation",  # a booked service code missing from their specialisation
    "schedule",  # no shift that weekday, or the shift does not cover the whole service window
    "break",  # the window overlaps their break
    "leave",  # approved leave on the date
    "overlap",  # clashes with another live assignment, travel time between the two included
)
RANKING: tuple[str, ...] = ("preferred", "distance_km", "rating", "assignments_today")
DAY_MINUTES = 24 * 60
UNKNOWN_DISTANCE_KM = 100.0  # no coordinates on one side: ranked after every known distance


@dataclass(frozen=True)
class Need:
    """What a booking asks of a therapist."""

    booking_id: uuid.UUID
    booking_number: str
    vendor_id: uuid.UUID
    customer_id: uuid.UUID
    local_date: dt.date  # platform zone
    start_minute: int  # minutes after local midnight
    minutes: int  # the whole service, add-ons included
    starts_at: dt.datetime  # UTC
    location: Point | None
    service_codes: frozenset[str]
    gender: str | None = None
    preferred: frozenset[uuid.UUID] = frozenset()
    declined: frozenset[uuid.UUID] = frozenset()
    service_id: uuid.UUID | None = None  # the first booked service (an assignment names one)
    address: str = ""

    @property
    def ends_at(self) -> dt.datetime:
        return self.starts_at + dt.timedelta(minutes=self.minutes)

    @property
    def end_minute(self) -> int:
        return self.start_minute + self.minutes

    @property
    def weekday(self) -> int:
        """0 = Sunday, as therapist_schedules counts."""
        return (self.local_date.weekday() + 1) % 7


@dataclass(frozen=True)
class Shift:
    start_minute: int
    end_minute: int
    available: bool = True
    break_start: int | None = None
    break_end: int | None = None


@dataclass(frozen=True)
class Engagement:
    """A live assignment: its service window and its stored busy period (window + buffer)."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    busy_until: dt.datetime
    location: Point | None
    assignment_id: uuid.UUID | None = None


@dataclass
class Candidate:
    therapist_id: uuid.UUID
    vendor_id: uuid.UUID
    name: str
    status: str
    codes: frozenset[str]
    rating: float = 0.0
    gender: str | None = None
    user_id: uuid.UUID | None = None
    shift: Shift | None = None
    on_leave: bool = False
    position: Point | None = None
    position_source: str = "unknown"  # live | vendor_address | unknown
    engagements: list[Engagement] = field(default_factory=list)
    assignments_today: int = 0


def clash(need: Need, engagements: list[Engagement], buffer_minutes: int = TURNAROUND_MINUTES) -> Engagement | None:
    """The first engagement the booking collides with: overlapping windows, too little time to get
    from one place to the other (at least the turnaround), or overlapping stored busy periods (what
    the database's exclusion constraint compares), or None."""
    busy_until = need.ends_at + dt.timedelta(minutes=buffer_minutes)
    for engagement in engagements:
        if engagement.starts_at < busy_until and need.starts_at < engagement.busy_until:
            return engagement
        distance = (haversine_km(engagement.location, need.location)
                    if engagement.location and need.location else None)
        gap = dt.timedelta(minutes=gap_needed(distance))
        if engagement.ends_at <= need.starts_at:
            if engagement.ends_at + gap > need.starts_at:
                return engagement
        elif need.ends_at <= engagement.starts_at:
            if need.ends_at + gap > engagement.starts_at:
                return engagement
        else:
            return engagement
    return None


def excluded_by(need: Need, candidate: Candidate, extra: list[Engagement] | None = None) -> str | None:
    """The first rule (in RULES order) that excludes the candidate, or None when eligible.
    `extra`: engagements planned in this run but not yet written (batch matching)."""
    if candidate.therapist_id in need.declined:
        return "declined"
    if candidate.status != "active":
        return "status"
    if need.gender and candidate.gender != need.gender:
        return "gender"
    if not need.service_codes <= candidate.codes:
        return "specialisation"
    shift = candidate.shift
    if (shift is None or not shift.available or need.end_minute > DAY_MINUTES
            or need.start_minute < shift.start_minute or need.end_minute > shift.end_minute):
        return "schedule"  # ending exactly at the shift's end is fine
    if (shift.break_start is not None and shift.break_end is not None
            and need.start_minute < shift.break_end and shift.break_start < need.end_minute):
        return "break"
    if candidate.on_leave:
        return "leave"
    if clash(need, candidate.engagements + (extra or [])) is not None:
        return "overlap"
    return None


@dataclass(frozen=True)
class Score:
    """Why a candidate ranks where it does (kept in the decision record)."""

    therapist_id: uuid.UUID
    name: str
    preferred: bool
    distance_km: float | None
    origin: str  # previous_assignment | live | vendor_address | unknown
    travel_minutes: int | None
    rating: float
    assignments_today: int

    def key(self) -> tuple[Any, ...]:
        distance = UNKNOWN_DISTANCE_KM if self.distance_km is None else round(self.distance_km, 2)
        return (not self.preferred, distance, -self.rating, self.assignments_today, str(self.therapist_id))

    def as_dict(self) -> dict[str, Any]:
        return {"therapist_id": str(self.therapist_id), "name": self.name, "preferred": self.preferred,
                "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
                "origin": self.origin, "travel_minutes": self.travel_minutes, "rating": self.rating,
                "assignments_today": self.assignments_today}


def origin_of(need: Need, candidate: Candidate, extra: list[Engagement] | None = None) -> tuple[Point | None, str]:
    """Where the therapist sets out from: the place of their last assignment ending before this one
    on the same day, else their live position, else their vendor's address."""
    day_start = need.starts_at - dt.timedelta(minutes=need.start_minute)
    before = [e for e in candidate.engagements + (extra or [])
              if day_start <= e.ends_at <= need.starts_at and e.location is not None]
    if before:
        return max(before, key=lambda e: e.ends_at).location, "previous_assignment"
    return candidate.position, candidate.position_source if candidate.position else "unknown"


def score(need: Need, candidate: Candidate, extra: list[Engagement] | None = None,
          assignments_today: int | None = None) -> Score:
    origin, source = origin_of(need, candidate, extra)
    distance = haversine_km(origin, need.location) if origin and need.location else None
    return Score(candidate.therapist_id, candidate.name, candidate.therapist_id in need.preferred, distance,
                 source, None if distance is None else drive_minutes(distance), float(candidate.rating or 0),
                 candidate.assignments_today if assignments_today is None else assignments_today)


@dataclass
class Evaluation:
    pool: int
    excluded: dict[str, int]
    ranked: list[tuple[Candidate, Score]]

    def explanation(self) -> dict[str, Any]:
        return {"pool": self.pool, "eligible": len(self.ranked),
                "excluded": {rule: self.excluded.get(rule, 0) for rule in RULES}}


def evaluate(need: Need, candidates: list[Candidate]) -> Evaluation:
    """Apply the rules to the pool (the booking's vendor's therapists) and rank the eligible:
    preferred therapists first, then travel distance, rating, and the fewest assignments that day."""
    excluded: Counter[str] = Counter()
    eligible: list[tuple[Candidate, Score]] = []
    for candidate in candidates:
        if candidate.vendor_id != need.vendor_id:
            continue
        rule = excluded_by(need, candidate)
        if rule is None:
            eligible.append((candidate, score(need, candidate)))
        else:
            excluded[rule] += 1
    eligible.sort(key=lambda pair: pair[1].key())
    pool = sum(1 for c in candidates if c.vendor_id == need.vendor_id)
    return Evaluation(pool, dict(excluded), eligible)


def planned_engagement(need: Need, buffer_minutes: int = TURNAROUND_MINUTES) -> Engagement:
    return Engagement(need.starts_at, need.ends_at, need.ends_at + dt.timedelta(minutes=buffer_minutes),
                      need.location)


def distance_or_unknown(value: float | None) -> float:
    return UNKNOWN_DISTANCE_KM if value is None or math.isnan(value) else value
