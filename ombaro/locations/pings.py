"""Pings from the therapist app: whose they are, which fixes are refused, and one statement per batch.
The last-position trigger (migration 0004) keeps `therapist_last_positions` from them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.db import driver_pipeline
from ombaro.locations.retention import RETENTION
from ombaro.models.dispatch import TherapistLastPosition
from ombaro.models.vendors import Therapist

MAX_CLOCK_SKEW = dt.timedelta(minutes=2)  # a phone's clock may run this far ahead
MAX_PINGS_PER_BATCH = 500


class PingsRejected(ValueError):
    """Field errors, as the API's `errors` object shows them."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("the location batch is not valid")
        self.errors = errors


class NotATherapist(PermissionError):
    pass


@dataclass(frozen=True)
class TherapistRef:
    id: uuid.UUID
    vendor_id: uuid.UUID


def therapist_of(session: Session, user_id: uuid.UUID | None) -> TherapistRef:
    """The caller's own therapist row (row-level security shows a therapist only theirs)."""
    row = session.execute(select(Therapist.id, Therapist.vendor_id).where(Therapist.user_id == user_id)
                          .order_by(Therapist.created_at, Therapist.id).limit(1)).first()
    if user_id is None or row is None:
        raise NotATherapist("only a therapist posts locations, and only their own")
    return TherapistRef(row.id, row.vendor_id)


def check_pings(pings: Sequence[Mapping[str, Any]], *, therapist: TherapistRef, claimed: uuid.UUID | None,
                now: dt.datetime, retention: dt.timedelta = RETENTION) -> None:
    """Refuse a batch for someone else, and fixes from the future or older than the retention
    window (ranges and the batch size are the schema's business). Raises PingsRejected."""
    errors: dict[str, Any] = {}
    if claimed is not None and claimed != therapist.id:
        errors["therapist_id"] = [NOT_YOURS]
    if per_ping := timestamp_errors(pings, now=now, retention=retention):
        errors["pings"] = per_ping
    if errors:
        raise PingsRejected(errors)


NOT_YOURS = "A therapist posts only their own locations."


def timestamp_errors(pings: Sequence[Mapping[str, Any]], *, now: dt.datetime, retention: dt.timedelta = RETENTION
                     ) -> dict[int, dict[str, list[str]]]:
    """The fixes from the future or older than the retention window, by index (check_pings' "pings")."""
    per_ping: dict[int, dict[str, list[str]]] = {}
    for index, ping in enumerate(pings):
        stamp = ping["timestamp"]
        if stamp > now + MAX_CLOCK_SKEW:
            per_ping[index] = {"timestamp": ["Is in the future."]}
        elif stamp < now - retention:
            per_ping[index] = {"timestamp": [f"Is older than the {int(retention.total_seconds() // 3600)}-hour "
                                             "retention window."]}
    return per_ping


# One statement for the whole batch, its shape independent of the batch size (prepared once): the
# last-position trigger then runs once per batch. psycopg placeholders: it runs on the driver's
# connection, in a pipeline with the two statements below.
# The batch travels as one JSON parameter, its numbers and timestamps as the exact text of the loaded
# values (Decimal, aware datetime): dumping it is one C call, where nine arrays cost psycopg ~2 ms of
# Python a 50-ping batch (issue 16). A ping without is_moving is moving from 1 km/h (as before).
_PING_ROWS = ("json_to_recordset(%(pings)s::json) AS p(latitude numeric, longitude numeric, accuracy numeric, "
              "altitude numeric, speed numeric, heading numeric, battery_level integer, is_moving boolean, "
              "timestamp timestamptz)")
_PING_VALUES = ("p.latitude, p.longitude, p.accuracy, p.altitude, p.speed, p.heading, p.battery_level, "
                "coalesce(p.is_moving, p.speed >= 1, false), p.timestamp")
_INSERT_INTO = ("INSERT INTO therapist_locations (therapist_id, latitude, longitude, accuracy, altitude, speed, "
                "heading, battery_level, is_moving, timestamp) ")
INSERT_PINGS = f"{_INSERT_INTO}SELECT %(therapist)s, {_PING_VALUES} FROM {_PING_ROWS}"
# Pings are telemetry kept 24 hours: a commit need not wait for the WAL flush (the PostgreSQL manual's
# own example of where asynchronous commit fits). A server crash may lose the last fraction of a
# second of acknowledged pings, never corrupt anything; the phone's next batch brings a fresher fix.
# Transaction-local, so nothing else on the pooled connection is affected (docs/dispatch.md,
# "Live locations").
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"
# The same as transaction-local settings, for a caller that sets them with its role and claims in one
# statement (web.extension.caller_write's `settings`, queue_own_pings' caller; issue 16, session 6).
BATCH_SETTINGS: Mapping[str, str] = MappingProxyType({"synchronous_commit": "off"})
LAST_POSITION_COLUMNS = ("id", "vendor_id", "latitude", "longitude", "accuracy", "speed", "heading", "battery_level",
                         "is_moving", "recorded_at")
READ_LAST_POSITION = f"SELECT {', '.join(LAST_POSITION_COLUMNS)} FROM therapist_last_positions WHERE id = %s"


def record_pings(session: Session, therapist: TherapistRef, pings: Sequence[Mapping[str, Any]]
                 ) -> TherapistLastPosition | None:
    """Store a batch; returns the therapist's latest position afterwards, whichever batch it came from
    (a detached object: read, not tracked by the session).

    The asynchronous commit, the insert and the read of the last position go to PostgreSQL in one
    pipeline (one round trip instead of three, issue 16), inside the session's transaction and so
    under its role and claims."""
    # A refused row is raised as the session would have raised it (IntegrityError, DataError...), so
    # the API maps it to the same problem as before (web/errors.py).
    with driver_pipeline(session, INSERT_PINGS) as pipe:
        cursor = pipe.cursor()
        cursor.execute(ASYNC_COMMIT)
        cursor.execute(INSERT_PINGS, {"therapist": therapist.id, "pings": _batch(pings)})
        cursor.execute(READ_LAST_POSITION, (therapist.id,))
        row = cursor.fetchone()
    return None if row is None else _last_position(row)


def _batch(pings: Sequence[Mapping[str, Any]]) -> str:
    """A loaded batch as the insert's JSON: exact text for Decimals and datetimes (str), not floats."""
    return json.dumps(pings, default=str, separators=(",", ":"))


def _last_position(row: Sequence[Any]) -> TherapistLastPosition:
    return TherapistLastPosition(**dict(zip(LAST_POSITION_COLUMNS, row, strict=True)))


# The caller's own therapist row, as therapist_of reads it (row-level security shows a therapist only theirs).
_OWN_THERAPIST = ("SELECT id FROM therapists WHERE user_id = %(user)s ORDER BY created_at, id LIMIT 1")
# The batch for the caller's own therapist, and only when the therapist id it names (if any) is theirs:
# otherwise it inserts nothing, and the read below says why.
INSERT_OWN_PINGS = (f"{_INSERT_INTO}SELECT me.id, {_PING_VALUES} FROM ({_OWN_THERAPIST}) AS me, {_PING_ROWS} "
                    "WHERE %(claimed)s::uuid IS NULL OR me.id = %(claimed)s::uuid")
READ_OWN_POSITION = (f"SELECT me.id, {', '.join('lp.' + c for c in LAST_POSITION_COLUMNS)} "
                     f"FROM ({_OWN_THERAPIST}) AS me LEFT JOIN therapist_last_positions AS lp ON lp.id = me.id")


def queue_own_pings(driver: psycopg.Connection[Any], user_id: uuid.UUID, pings: Sequence[Mapping[str, Any]], *,
                    claimed: uuid.UUID | None) -> Callable[[], TherapistLastPosition | None]:
    """record_pings for the caller's own therapist without a look-up first (issue 16): queues the
    insert and the read of the last position on `driver`, inside a transaction already running as
    the request role with the caller's claims and BATCH_SETTINGS (the asynchronous commit), all in
    one pipeline: one round trip (web.extension.caller_write). Returns what reads the answer
    once they ran: the latest position, or NotATherapist / PingsRejected (therapist_id) for a batch
    that stored nothing. The fixes' timestamps are checked before (timestamp_errors)."""
    cursor = driver.cursor()
    cursor.execute(INSERT_OWN_PINGS, {"user": user_id, "claimed": claimed, "pings": _batch(pings)})
    cursor.execute(READ_OWN_POSITION, {"user": user_id})

    def latest() -> TherapistLastPosition | None:
        row = cursor.fetchone()
        if row is None:
            raise NotATherapist("only a therapist posts locations, and only their own")
        if claimed is not None and claimed != row[0]:
            raise PingsRejected({"therapist_id": [NOT_YOURS]})
        return None if row[1] is None else _last_position(row[1:])

    return latest
