"""Distances and travel times. One model everywhere (ranking, eligibility, batch cost, ETA), so the
numbers a customer sees agree with the ones dispatch decided on."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088
# Straight-line distance understates a city drive: roads add about a third. 25 km/h is an Indian
# metro average door to door. Both are estimates; docs/dispatch.md says so.
ROAD_FACTOR = 1.3
CITY_SPEED_KMH = 25.0
# Packing up after a session and leaving: the least time between two assignments of one therapist,
# and the buffer the database's exclusion constraint keeps after each assignment dispatch makes.
TURNAROUND_MINUTES = 15


@dataclass(frozen=True)
class Point:
    latitude: float
    longitude: float


def haversine_km(a: Point, b: Point) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def drive_minutes(distance_km: float) -> int:
    """Estimated minutes to drive a straight-line distance, rounded up."""
    return math.ceil(distance_km * ROAD_FACTOR / CITY_SPEED_KMH * 60 - 1e-9)


def gap_needed(distance_km: float | None) -> int:
    """Minutes a therapist needs between two assignments `distance_km` apart (unknown: turnaround)."""
    if distance_km is None:
        return TURNAROUND_MINUTES
    return max(TURNAROUND_MINUTES, drive_minutes(distance_km))


def path_km(points: list[Point]) -> float:
    return sum(haversine_km(a, b) for a, b in itertools.pairwise(points))
