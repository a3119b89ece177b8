"""The hourly maintenance of the partitioned `therapist_locations` table (`locations.prune`):
hourly partitions kept ready ahead, hours older than the retention dropped, the straddling hour
trimmed in bounded batches, stale GEO members forgotten. Never touches therapist_last_positions."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from ombaro.db import WORKER_ROLE, act_as
from ombaro.locations.positions import forget_stale_members

log = logging.getLogger(__name__)

RETENTION = dt.timedelta(hours=24)  # pings older than this are pruned (and refused on arrival)
STALE_AFTER = dt.timedelta(hours=25)  # an oldest ping older than this means pruning is not keeping up
HOURS_AHEAD = 48  # partitions kept ready ahead of time
PARENT = "therapist_locations"
HISTORY_PARTITION = "therapist_locations_history"


@dataclass(frozen=True)
class Partition:
    name: str
    lower: dt.datetime | None  # None: MINVALUE
    upper: dt.datetime | None  # None: MAXVALUE
    detach_pending: bool


_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


def _bound(raw: str) -> dt.datetime | None:
    raw = raw.strip()
    if raw.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    return dt.datetime.fromisoformat(raw.strip("'")).astimezone(dt.UTC)


def partitions(conn: Any, parent: str = PARENT) -> list[Partition]:
    """The partitions of `parent` with their bounds (read with the session in UTC)."""
    conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # bounds are printed in the session's zone
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending FROM pg_inherits AS i "
        "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY 1"),
        {"parent": parent}).all()
    found = []
    for name, bound, pending in rows:
        match = _BOUND.match(bound or "")
        if match is None:  # DEFAULT: no bounds
            found.append(Partition(name, None, None, pending))
            continue
        found.append(Partition(name, _bound(match.group(1)), _bound(match.group(2)), pending))
    return found


def ensure_partitions(engine: Engine, *, now: dt.datetime, hours_ahead: int = HOURS_AHEAD,
                      lock_timeout_ms: int = 2000) -> dict[str, int]:
    """Hourly partitions of therapist_locations from this hour to `hours_ahead` on, and monthly
    ones of analytics_events for this month and the next two. Attaching takes only SHARE UPDATE
    EXCLUSIVE on the parent: inserts carry on."""
    created = {"therapist_locations": 0, "analytics_events": 0}
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        created["therapist_locations"] = conn.execute(text(
            "SELECT ensure_hourly_partitions('therapist_locations', :from_hour, :hours)"),
            {"from_hour": now, "hours": hours_ahead + 1}).scalar_one()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        created["analytics_events"] = conn.execute(text(
            "SELECT ensure_monthly_partitions('analytics_events', CAST(:month AS date), 3)"),
            {"month": now.astimezone(dt.UTC).date().replace(day=1)}).scalar_one()
    return created


LOCK_TROUBLE = {"55P03": "lock timeout", "57014": "statement timeout", "40P01": "deadlock",
                "55000": "another partition is still being detached"}
DETACHED_NAME = r"^therapist_locations_p[0-9]{8}T[0-9]{2}$"
RECLAIM_PREFIX = "therapist_locations_reclaim_"  # expired hours detached, their files not yet freed
RECLAIM_NAME = r"^therapist_locations_reclaim_p[0-9]{8}T[0-9]{2}$"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _detach(engine: Engine, name: str, *, pending: bool, lock_timeout_ms: int) -> None:
    """DETACH ... CONCURRENTLY: only SHARE UPDATE EXCLUSIVE on the parent, so inserts carry on. It
    needs autocommit, and a parent without a DEFAULT partition (hence the catch-all below the first
    hour instead). Its second step waits for transactions that still see the partition; a lock
    timeout there leaves the partition "pending detach", which the next run finishes (FINALIZE)."""
    with engine.connect() as raw:
        conn = raw.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
        try:
            mode = "FINALIZE" if pending else "CONCURRENTLY"
            conn.exec_driver_sql(f'ALTER TABLE {PARENT} DETACH PARTITION "{name}" {mode}')
        finally:
            conn.exec_driver_sql("RESET lock_timeout")


EXACT_COUNT_UP_TO = 10_000  # partitions this small are counted; larger ones are estimated from the catalog
EXCLUSIVE_LOCK_TIMEOUT_MS = 100  # the most an insert or a read of the table waits on the one-transaction drop


def _rows_of(conn: Any, names: list[str]) -> tuple[int, bool]:
    """The rows of the tables `names` for the report, and whether the figure is an estimate, in two
    statements whatever their number. A table that has been analysed (autovacuum does so after its
    inserts) and holds more than EXACT_COUNT_UP_TO rows takes `reltuples` scaled to its current
    size, as the planner does: a million-row hour costs nothing instead of a scan (issue 16). The
    others are counted."""
    estimates = dict(conn.execute(text(
        "SELECT c.relname, CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN round(c.reltuples / c.relpages "
        "* (pg_relation_size(c.oid) / current_setting('block_size')::int)) END "
        "FROM pg_class AS c WHERE c.relname = ANY(:names) AND c.relnamespace = CAST(current_schema() AS regnamespace)"),
        {"names": names}).all())
    large = [name for name in names if estimates.get(name) is not None and estimates[name] > EXACT_COUNT_UP_TO]
    small = [name for name in names if name not in large]
    rows = sum(int(estimates[name]) for name in large)
    if small:
        counts = " + ".join(f'(SELECT count(*) FROM "{name}")' for name in small)
        rows += int(conn.execute(text(f"SELECT {counts}")).scalar_one())
    return rows, bool(large)


def _reclaim_name(name: str) -> str:
    return RECLAIM_PREFIX + name.removeprefix(f"{PARENT}_")


def _detach_for_reclaim(engine: Engine, names: list[str], *, lock_timeout_ms: int, spent: dict[str, float],
                        removed: list[int]) -> bool:
    """Take the expired partitions `names` out of the table in one short transaction that frees no
    file: count (or estimate) their rows, DETACH each (not concurrently: ACCESS EXCLUSIVE on the
    parent, hence the short `lock_timeout_ms`) and rename it into the reclaim area
    (therapist_locations_reclaim_pYYYYMMDDTHH, which nothing reads). `reclaim` frees the files
    later, off the prune's path. DETACH copies the foreign key onto each table, which creates its
    triggers on therapists under SHARE ROW EXCLUSIVE: an open write on therapists makes this give
    up within the timeout like a busy parent does. Returns whether it was done (all or nothing);
    the rows go into `removed` once it commits."""
    began = time.perf_counter()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            rows, estimated = _rows_of(conn, names)
            conn.exec_driver_sql("; ".join(  # one round trip: the parent's lock is held from the first
                f'ALTER TABLE {PARENT} DETACH PARTITION "{name}"; '
                f'ALTER TABLE "{name}" RENAME TO "{_reclaim_name(name)}"' for name in names))
    except DBAPIError as exc:
        if _sqlstate(exc) not in LOCK_TROUBLE:
            raise
        log.info("expired partitions not detached for reclaim (%s): dropping them in place", exc.orig)
        return False
    finally:
        spent["detach"] = time.perf_counter() - began
    removed[:] = [rows, int(estimated)]
    return True


def _standalone_tables(conn: Any, pattern: str) -> list[str]:
    """The plain tables (not partitions) of the current schema whose names match `pattern`, by name."""
    return list(conn.execute(text(
        "SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = CAST(current_schema() AS regnamespace) "
        "AND c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ :pattern ORDER BY 1"),
        {"pattern": pattern}).scalars())


def to_reclaim(conn: Any) -> list[str]:
    """The tables in the reclaim area: expired hours taken out of the table, files not yet freed."""
    return _standalone_tables(conn, RECLAIM_NAME)


def reclaim(engine: Engine, *, lock_timeout_ms: int = 2000,
            exclusive_lock_timeout_ms: int = EXCLUSIVE_LOCK_TIMEOUT_MS) -> dict[str, Any]:
    """Free the files of the expired hours `prune` moved into the reclaim area (and of any an
    earlier reclaim left, e.g. after a crash), in two transactions that lock nothing the
    application uses for longer than a few milliseconds:

    1. TRUNCATE them all: the file system frees their bytes at this commit (the slow part, in
       proportion to the bytes on a disk mounted with `discard`), locking only these tables;
    2. DROP them, their files now empty, one short transaction each: each still carries the
       copied foreign key, so its DROP takes ACCESS EXCLUSIVE on therapists (which the pings'
       foreign-key checks wait for), under `exclusive_lock_timeout_ms`. A lock not had in time
       leaves the rest, empty, for the next reclaim (reported in `left_to_reclaim`).

    Rows are not counted here: the prune that took them out of the table reported them."""
    spent: dict[str, float] = {}
    with engine.connect() as conn:
        names = to_reclaim(conn)
        size = int(conn.execute(text(
            "SELECT coalesce(sum(pg_total_relation_size(CAST(quote_ident(n) AS regclass))), 0) "
            "FROM unnest(CAST(:names AS text[])) AS n"), {"names": names}).scalar_one()) if names else 0
    reclaimed: list[str] = []
    freed = 0
    if names:
        quoted = ", ".join(f'"{name}"' for name in names)
        began = time.perf_counter()
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                conn.exec_driver_sql(f"TRUNCATE {quoted}")
            spent["truncate"] = time.perf_counter() - began
            freed = size
            began = time.perf_counter()
            short = int(min(exclusive_lock_timeout_ms, lock_timeout_ms))
            for name in names:  # one at a time: each holds therapists (and so the pings' key checks) a few ms
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {short}")
                    conn.exec_driver_sql(f'DROP TABLE "{name}"')
                reclaimed.append(name)
            spent["drop"] = time.perf_counter() - began
        except DBAPIError as exc:  # 42P01: a reclaim running at the same time dropped them first
            if _sqlstate(exc) not in LOCK_TROUBLE and _sqlstate(exc) != "42P01":
                raise
            log.info("reclaim area not emptied (%s): the next reclaim finishes it", exc.orig)
    with engine.connect() as conn:
        left = to_reclaim(conn)
    return {"reclaimed": reclaimed, "tables_reclaimed": len(reclaimed),
            "bytes_freed": freed, "left_to_reclaim": left,
            "durations_ms": {step: round(seconds * 1000) for step, seconds in spent.items()}}


def _drop_at_once(engine: Engine, names: list[str], *, lock_timeout_ms: int, exclusive_lock_timeout_ms: int,
                  spent: dict[str, float], removed: list[int]) -> bool:
    """Drop the expired partitions `names` while still attached, in two short transactions, without
    detaching them (DETACH copies the foreign key onto each table, with triggers on therapists, and
    dropping a detached table takes ACCESS EXCLUSIVE on therapists):

    1. count (or estimate) their rows and TRUNCATE them: this frees their files, which costs time
       in proportion to their bytes (on this machine's ext4 mounted with `discard`, 0.5 s a million
       pings, all in truncate(2)), but it locks only the expired hours, which no insert routes to
       and the last-position reads never touch; their rows go into `removed` once this commits;
    2. DROP them all in one statement and one commit, their files now empty. DROP takes ACCESS
       EXCLUSIVE on the parent, so its lock timeout is short: an insert waits at most that long
       plus a few milliseconds.

    Returns whether the partitions were dropped; False (a lock not had in time) leaves them for
    the concurrent detach. Nothing is inserted into an expired hour (the API refuses such pings)."""
    quoted = ", ".join(f'"{name}"' for name in names)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        began = time.perf_counter()
        rows, estimated = _rows_of(conn, names)
        spent["count"] = spent.get("count", 0.0) + time.perf_counter() - began
        began = time.perf_counter()
        conn.exec_driver_sql(f"TRUNCATE {quoted}")
    spent["truncate"] = time.perf_counter() - began
    removed[:] = [rows, int(estimated)]
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(exclusive_lock_timeout_ms)}")
            conn.exec_driver_sql(f"DROP TABLE {quoted}")
    except DBAPIError as exc:
        if _sqlstate(exc) not in LOCK_TROUBLE:
            raise
        log.info("expired partitions emptied but not dropped at once (%s): detaching them concurrently", exc.orig)
        return False
    return True


def _drop_detached(engine: Engine, name: str, *, lock_timeout_ms: int, spent: dict[str, float]) -> tuple[int, bool]:
    """Count (or estimate, see _rows_of) and drop a table no longer attached (nobody writes to it).
    The figure is what the job reports; `spent` collects its time apart from the drop's."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        began = time.perf_counter()
        rows, estimated = _rows_of(conn, [name])
        spent["count"] = spent.get("count", 0.0) + time.perf_counter() - began
        conn.exec_driver_sql(f'DROP TABLE "{name}"')
    return rows, estimated


def _detached(conn: Any) -> list[str]:
    """Hours detached concurrently by an earlier run but not dropped (its DROP timed out)."""
    return _standalone_tables(conn, DETACHED_NAME)


def _leftovers(engine: Engine) -> tuple[list[str], str | None]:
    """Hours detached by an earlier run but not dropped (its DROP timed out), and the partition
    left pending detach, if any (PostgreSQL allows one per table)."""
    with engine.connect() as conn:
        detached = _detached(conn)
        pending = conn.execute(text(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass) AND i.inhdetachpending"), {"parent": PARENT}).scalar()
    return detached, pending


def _delete_edge(engine: Engine, lower: dt.datetime | None, upper: dt.datetime, *, batch_rows: int,
                 claims: dict[str, Any], progress: Callable[[], None] | None = None) -> int:
    """Delete rows in [lower, upper) in bounded batches, one short transaction each (as the workers'
    role): no long lock, no huge transaction, inserts unaffected."""
    lower_clause = "timestamp >= :lower AND " if lower is not None else ""
    statement = text(
        f"DELETE FROM therapist_locations AS t USING (SELECT id, timestamp FROM therapist_locations "
        f"WHERE {lower_clause}timestamp < :upper LIMIT :batch) AS d "
        f"WHERE {lower_clause.replace('timestamp', 't.timestamp')}t.timestamp < :upper "
        f"AND t.id = d.id AND t.timestamp = d.timestamp")
    removed = 0
    while True:
        with engine.begin() as conn:
            act_as(conn, WORKER_ROLE, claims)
            count = conn.execute(statement, {"lower": lower, "upper": upper, "batch": batch_rows}).rowcount
        removed += count
        if progress:
            progress()
        if count < batch_rows:
            return removed


def _oldest_ping(conn: Any, names: list[str]) -> dt.datetime | None:
    """The oldest ping of the partitions `names` (in the order of their bounds): the first one's
    that holds any. One small index read, usually, instead of planning a read of every hour (the
    whole table's min(timestamp) cost more than the rest of a prune, issue 16)."""
    for name in names:
        oldest: dt.datetime | None = conn.execute(text(f'SELECT min(timestamp) FROM "{name}"')).scalar()
        if oldest is not None:
            return oldest
    return None


def retention_status(conn: Any, *, now: dt.datetime | None = None,
                     in_order: list[str] | None = None) -> dict[str, Any]:
    """The oldest stored ping and whether pruning is keeping up (older than 25 hours: stale).
    `in_order`: the table's partitions in the order of their bounds, when the caller knows them."""
    if in_order is None:
        oldest, current = conn.execute(text("SELECT min(timestamp), now() FROM therapist_locations")).one()
    else:
        oldest = _oldest_ping(conn, in_order)
        current = now if now is not None else conn.execute(select(func.now())).scalar_one()
    now = now or current
    age = None if oldest is None else max(0, int((now - oldest).total_seconds()))
    return {"oldest_ping_at": oldest, "oldest_ping_age_seconds": age,
            "stale": age is not None and age > STALE_AFTER.total_seconds(),
            "stale_after_seconds": int(STALE_AFTER.total_seconds())}


def prune(engine: Engine, *, now: dt.datetime | None = None, retention: dt.timedelta = RETENTION,
          batch_rows: int = 50_000, lock_timeout_ms: int = 2000, hours_ahead: int = HOURS_AHEAD,
          exclusive_lock_timeout_ms: int = EXCLUSIVE_LOCK_TIMEOUT_MS, redis: Any = None,
          job_id: uuid.UUID | None = None, reclaim_later: bool = True,
          progress: Callable[[float, str | None], None] | None = None) -> dict[str, Any]:
    """The hourly maintenance (`locations.prune`): create partitions ahead, drop the hours that
    are wholly older than the retention, delete the older part of the hour that straddles the
    cutoff (and of the catch-all partition) in bounded batches, and report.

    With `reclaim_later` (the default) the expired hours are detached and moved into the reclaim
    area in one short transaction (`_detach_for_reclaim`), which frees no file: `reclaim` (the
    follow-up job) frees them, so the prune's time does not grow with the bytes. When that cannot
    be done within `exclusive_lock_timeout_ms` (a busy parent, an open write on therapists), the
    expired hours are emptied (TRUNCATE, which locks only them) and then dropped by one statement
    in a short transaction when the table's lock can be had within `exclusive_lock_timeout_ms` (at
    most `lock_timeout_ms`); when it cannot (a long reader, a held lock), each is detached
    CONCURRENTLY and dropped instead, which blocks no insert or read.
    Runs DDL on the owner's connections (partitions are the owner's; DETACH CONCURRENTLY needs
    autocommit) and the deletes as the workers' role. A partition whose lock cannot be had within
    `lock_timeout_ms` is left for the next run and does not stop the others. Never touches
    therapist_last_positions: a therapist's last known position survives any pruning."""
    def report(percent: float, message: str | None = None) -> None:
        if progress is not None:
            progress(percent, message)

    spent: dict[str, float] = {}
    began = time.perf_counter()
    with engine.connect() as conn:
        now = now or conn.execute(select(func.now())).scalar_one()
    cutoff = now - retention
    created = ensure_partitions(engine, now=now, hours_ahead=hours_ahead, lock_timeout_ms=lock_timeout_ms)
    spent["ensure"] = time.perf_counter() - began
    report(10, f"partitions ready {hours_ahead} hours ahead")
    began = time.perf_counter()

    with engine.connect() as conn, conn.begin():
        found = partitions(conn)
        detached = _detached(conn)
    # Pending-detach partitions first: while one is pending, no other can be detached.
    expired = sorted((p for p in found if p.lower is not None and p.upper is not None and p.upper <= cutoff),
                     key=lambda p: (not p.detach_pending, p.lower))
    dropped: list[str] = []
    deferred: list[dict[str, str]] = []
    rows_dropped = 0
    estimated = False
    for name in detached:
        try:
            rows, guessed = _drop_detached(engine, name, lock_timeout_ms=lock_timeout_ms, spent=spent)
            rows_dropped, estimated = rows_dropped + rows, estimated or guessed
            dropped.append(name)
        except DBAPIError as exc:
            if _sqlstate(exc) not in LOCK_TROUBLE:
                raise
            deferred.append({"partition": name, "reason": LOCK_TROUBLE[_sqlstate(exc) or ""]})
    at_once = for_reclaim = False
    exclusive_ms = min(exclusive_lock_timeout_ms, lock_timeout_ms)
    if expired and reclaim_later and not any(p.detach_pending for p in expired):
        taken: list[int] = []
        if _detach_for_reclaim(engine, [p.name for p in expired], lock_timeout_ms=exclusive_ms, spent=spent,
                               removed=taken):
            for_reclaim = at_once = True
            rows_dropped, estimated = rows_dropped + taken[0], estimated or bool(taken[1])
            dropped.extend(p.name for p in expired)
            report(60, f"took {len(expired)} partitions out in one transaction, their files left to reclaim")
    if expired and not at_once:
        removed: list[int] = []
        try:
            at_once = _drop_at_once(engine, [p.name for p in expired], spent=spent, removed=removed,
                                    lock_timeout_ms=lock_timeout_ms, exclusive_lock_timeout_ms=exclusive_ms)
        except DBAPIError as exc:
            if _sqlstate(exc) not in LOCK_TROUBLE:
                raise
            log.info("expired partitions not emptied at once (%s): detaching them concurrently", exc.orig)
        if removed:  # emptied: their rows are gone even if a partition waits for the next run's drop
            rows_dropped, estimated = rows_dropped + removed[0], estimated or bool(removed[1])
        if at_once:
            dropped.extend(p.name for p in expired)
            report(60, f"dropped {len(expired)} partitions in one transaction")
    blocked_by: str | None = None
    for number, part in enumerate([] if at_once else expired, start=1):
        if blocked_by is not None:
            deferred.append({"partition": part.name, "reason": f"waiting for {blocked_by} to finish detaching"})
            continue
        try:
            _detach(engine, part.name, pending=part.detach_pending, lock_timeout_ms=lock_timeout_ms)
            rows, guessed = _drop_detached(engine, part.name, lock_timeout_ms=lock_timeout_ms, spent=spent)
            rows_dropped, estimated = rows_dropped + rows, estimated or guessed
            dropped.append(part.name)
        except DBAPIError as exc:
            if _sqlstate(exc) not in LOCK_TROUBLE:
                raise
            log.warning("partition %s not dropped (%s), retried at the next run", part.name, exc.orig)
            deferred.append({"partition": part.name, "reason": LOCK_TROUBLE[_sqlstate(exc) or ""]})
            blocked_by = _leftovers(engine)[1]
        report(10 + 50 * number / max(1, len(expired)), f"dropped {len(dropped)} of {len(expired)} partitions")

    spent["drop"] = (time.perf_counter() - began - spent.get("count", 0.0) - spent.get("truncate", 0.0)
                     - spent.get("detach", 0.0))
    began = time.perf_counter()
    claims = {"role": "worker", "job": str(job_id) if job_id else None, "sub": None}
    edges = [p for p in found if p not in expired and not p.detach_pending
             and (p.lower is None or p.lower < cutoff)]
    rows_deleted = 0
    for part in edges:
        upper = cutoff if part.upper is None else min(part.upper, cutoff)
        rows_deleted += _delete_edge(engine, part.lower, upper, batch_rows=batch_rows, claims=claims)
    spent["edge"] = time.perf_counter() - began
    report(90, f"deleted {rows_deleted} rows at the edge")

    geo_removed = 0
    if redis is not None:
        try:
            geo_removed = forget_stale_members(redis)
        except Exception as exc:
            log.warning("could not clean the GEO index: %s", exc)
    gone = set(dropped)
    kept = sorted((p for p in found if p.name not in gone and not p.detach_pending),
                  key=lambda p: (p.lower is not None, p.lower or cutoff))  # the catch-all (MINVALUE) first
    in_order = None if any(p.lower is None and p.upper is None for p in kept) else [p.name for p in kept]
    try:  # a DEFAULT partition (none is made) holds any hour: then the whole table is read
        with engine.connect() as conn:
            status = retention_status(conn, now=now, in_order=in_order)
    except DBAPIError as exc:  # 42P01: another prune (a manual one) removed a partition meanwhile
        if _sqlstate(exc) != "42P01":
            raise
        with engine.connect() as conn:
            status = retention_status(conn, now=now)
    with engine.connect() as conn:
        left = to_reclaim(conn)
    if status["stale"]:
        log.warning("the oldest stored ping is %s seconds old: pruning is behind", status["oldest_ping_age_seconds"])
    return {
        "cutoff": cutoff.isoformat(),
        "partitions_created": created["therapist_locations"],
        "analytics_partitions_created": created["analytics_events"],
        "partitions_dropped": len(dropped),
        "dropped": dropped,
        "dropped_in_one_transaction": at_once,
        "files_left_to_reclaim": for_reclaim,
        "to_reclaim": left,
        "rows_in_dropped_partitions": rows_dropped,
        "rows_in_dropped_partitions_estimated": estimated,
        "rows_deleted_at_edge": rows_deleted,
        "rows_removed": rows_dropped + rows_deleted,
        "deferred": deferred,
        "geo_members_removed": geo_removed,
        "oldest_ping_at": status["oldest_ping_at"].isoformat() if status["oldest_ping_at"] else None,
        "oldest_ping_age_seconds": status["oldest_ping_age_seconds"],
        "stale": status["stale"],
        "durations_ms": {step: round(seconds * 1000) for step, seconds in spent.items()},
    }
