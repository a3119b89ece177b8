"""Live therapist locations (docs/dispatch.md, "Live locations"). This package's public API is
what it exports here; its modules are private to it (the import contracts in setup.cfg):

- `pings`: the therapist app's batches: whose they are, which fixes are refused, one insert;
- `positions`: the latest positions in Redis, read by dispatch (fresh fixes, radius search);
- `tracking`: a customer's view of their therapist on the way;
- `retention`: hourly partitions ahead, pruning, the retention status.
"""

from ombaro.locations.pings import (
    BATCH_SETTINGS,
    MAX_CLOCK_SKEW,
    MAX_PINGS_PER_BATCH,
    NotATherapist,
    PingsRejected,
    TherapistRef,
    check_pings,
    queue_own_pings,
    record_pings,
    therapist_of,
    timestamp_errors,
)
from ombaro.locations.positions import (
    LIVE_TTL_SECONDS,
    SEARCH_RADIUS_KM,
    forget_stale_members,
    fresh_near,
    fresh_positions,
    geo_key,
    location_key,
    publish,
    redis_client,
)
from ombaro.locations.retention import (
    HOURS_AHEAD,
    RETENTION,
    STALE_AFTER,
    Partition,
    ensure_partitions,
    partitions,
    prune,
    reclaim,
    retention_status,
    to_reclaim,
)
from ombaro.locations.tracking import NotOnTheWay, Tracking, track_booking

__all__ = [
    "BATCH_SETTINGS",
    "HOURS_AHEAD",
    "LIVE_TTL_SECONDS",
    "MAX_CLOCK_SKEW",
    "MAX_PINGS_PER_BATCH",
    "RETENTION",
    "SEARCH_RADIUS_KM",
    "STALE_AFTER",
    "NotATherapist",
    "NotOnTheWay",
    "Partition",
    "PingsRejected",
    "TherapistRef",
    "Tracking",
    "check_pings",
    "ensure_partitions",
    "forget_stale_members",
    "fresh_near",
    "fresh_positions",
    "geo_key",
    "location_key",
    "partitions",
    "prune",
    "publish",
    "queue_own_pings",
    "reclaim",
    "record_pings",
    "redis_client",
    "retention_status",
    "therapist_of",
    "timestamp_errors",
    "to_reclaim",
    "track_booking",
]
