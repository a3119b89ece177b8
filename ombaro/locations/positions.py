"""Latest positions in Redis (the schema document's caching section):

- `therapist:location:<therapist id>`: JSON {latitude, longitude, timestamp, accuracy}, TTL 5 min,
  so a key that exists is a fresh fix;
- `therapist:geo:<vendor id>`: a GEO set of the vendor's therapists, searched by radius by dispatch.

PostgreSQL stays the truth: `therapist_last_positions` is kept by a trigger and never pruned.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis

from ombaro.geo import Point
from ombaro.models.dispatch import TherapistLastPosition

log = logging.getLogger(__name__)

LIVE_TTL_SECONDS = 300
SEARCH_RADIUS_KM = 50.0


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    """The positions' Redis, with short timeouts: a slow Redis must not hold a dispatch (positions
    fall back to the database)."""
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def location_key(therapist_id: uuid.UUID | str) -> str:
    return f"therapist:location:{therapist_id}"


def geo_key(vendor_id: uuid.UUID | str) -> str:
    return f"therapist:geo:{vendor_id}"


def publish(redis: Any, position: TherapistLastPosition, *, now: dt.datetime) -> bool:
    """Put a latest position in Redis if it is still fresh; False when Redis could not be reached."""
    ttl = LIVE_TTL_SECONDS - int((now - position.recorded_at).total_seconds())
    if ttl <= 0:
        return True
    payload = {"latitude": float(position.latitude), "longitude": float(position.longitude),
               "timestamp": position.recorded_at.isoformat(),
               "accuracy": None if position.accuracy is None else float(position.accuracy)}
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.geoadd(geo_key(position.vendor_id), (float(position.longitude), float(position.latitude),
                                                  str(position.id)))
        pipe.set(location_key(position.id), json.dumps(payload), ex=ttl)
        pipe.execute()
    except Exception as exc:  # the database has it; dispatch falls back to the table
        log.warning("could not publish the position of therapist %s to Redis: %s", position.id, exc)
        return False
    return True


def _point(raw: bytes | str | None) -> Point | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return Point(float(data["latitude"]), float(data["longitude"]))


def fresh_positions(redis: Any, therapist_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Point]:
    """Fresh fixes (their key has not expired) of these therapists."""
    ids = list(therapist_ids)
    found: dict[uuid.UUID, Point] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        for therapist_id, raw in zip(chunk, redis.mget([location_key(t) for t in chunk]), strict=True):
            point = _point(raw)
            if point is not None:
                found[therapist_id] = point
    return found


def fresh_near(redis: Any, vendor_id: uuid.UUID, near: Point, radius_km: float = SEARCH_RADIUS_KM
               ) -> dict[uuid.UUID, Point]:
    """The vendor's therapists with a fresh fix within `radius_km` of `near` (GEO radius search;
    members whose location key expired are stale and left out)."""
    members = redis.geosearch(geo_key(vendor_id), longitude=near.longitude, latitude=near.latitude,
                              radius=radius_km, unit="km")
    ids = [uuid.UUID(m.decode() if isinstance(m, bytes) else m) for m in members]
    return fresh_positions(redis, ids)


def forget_stale_members(redis: Any) -> int:
    """Remove from the GEO sets the therapists whose location key has expired."""
    removed = 0
    for key in redis.scan_iter(match="therapist:geo:*", count=100):
        members = redis.zrange(key, 0, -1)
        for start in range(0, len(members), 1000):
            chunk = members[start:start + 1000]
            values = redis.mget([location_key(m.decode() if isinstance(m, bytes) else m) for m in chunk])
            stale = [m for m, v in zip(chunk, values, strict=True) if v is None]
            if stale:
                removed += redis.zrem(key, *stale)
    return removed

