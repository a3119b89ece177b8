"""Pruning pings by dropping whole expired hours and deleting only the edge, with inserts running
at the same time; a lock that cannot be had defers one partition, not the job."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from ombaro import commands, locations
from tests.factories import dispatch as factory
from tests.helpers import wait_until
from tests.services import migrate


@pytest.fixture(scope="module")
def private(make_database: Callable[[], str]) -> Iterator[tuple[Engine, str]]:
    """A database of its own: these tests drop partitions and count every row of the table."""
    url = make_database()
    migrate(url)
    engine = create_engine(url)
    yield engine, url
    engine.dispose()


def hour(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def insert(engine: Engine, therapist: uuid.UUID, stamps: list[dt.datetime]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
                          "VALUES (:t, 18.52, 73.85, :at)"), [{"t": therapist, "at": s} for s in stamps])


def count(engine: Engine, where: str, **params: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM therapist_locations WHERE {where}"), params).scalar_one()


def test_pruning_removes_exactly_the_expired_pings_while_inserts_go_on(private: tuple[Engine, str]) -> None:
    engine, _ = private
    vendor = factory.vendor(engine)
    therapist = factory.therapist(engine, vendor, codes=["SWD"])
    gone_quiet = factory.therapist(engine, vendor, codes=["SWD"])  # only expired pings
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    cutoff = now - locations.RETENTION
    with engine.connect() as conn, conn.begin():
        found = locations.partitions(conn)
    first_hour = min(p.lower for p in found if p.lower is not None)
    expired = [first_hour + dt.timedelta(minutes=m) for m in (1, 20, 59)]
    edge_before = [cutoff - dt.timedelta(seconds=s) for s in (1, 30)]
    edge_after = [cutoff + dt.timedelta(seconds=s) for s in (1, 30)]
    newer = [now - dt.timedelta(hours=1), now - dt.timedelta(seconds=5)]
    ancient = [now - dt.timedelta(days=3)]  # in the catch-all partition below the first hour
    insert(engine, therapist, expired + edge_before + edge_after + newer + ancient)
    insert(engine, gone_quiet, [first_hour + dt.timedelta(minutes=30)])
    assert _stale(engine, now)
    kept_before = count(engine, "timestamp >= :c", c=cutoff)

    stop, inserted, failures = threading.Event(), [0], []

    def keep_inserting() -> None:
        try:
            plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(plain, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("INSERT INTO therapist_locations (therapist_id, latitude, longitude) "
                                 "VALUES (%s, 18.5, 73.8)", (therapist,))
                    inserted[0] += 1
        except Exception as exc:  # any failure of an insert fails the test
            failures.append(exc)

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        wait_until(lambda: inserted[0] > 5, timeout=10)
        report = locations.prune(engine, now=now, batch_rows=2)
        wait_until(lambda: inserted[0] > 20, timeout=10)
    finally:
        stop.set()
        writer.join(10)

    assert failures == []
    assert count(engine, "timestamp < :c", c=cutoff) == 0
    assert count(engine, "timestamp >= :c", c=cutoff) == kept_before + inserted[0]
    assert report["rows_removed"] == len(expired) + len(edge_before) + len(ancient) + 1
    assert report["partitions_dropped"] >= 1 and report["rows_in_dropped_partitions"] >= len(expired) + 1
    assert report["rows_deleted_at_edge"] >= len(ancient)  # the catch-all's, and the cutoff hour's older part
    assert report["stale"] is False and report["deferred"] == []
    assert report["oldest_ping_at"] == min(edge_after).isoformat()  # read partition by partition
    with engine.connect() as conn:  # pruning never forgets where a therapist was last seen
        kept = set(conn.execute(text("SELECT id FROM therapist_last_positions")).scalars())
    assert {therapist, gone_quiet} <= kept


def _stale(engine: Engine, now: dt.datetime) -> bool:
    with engine.connect() as conn:
        return bool(locations.retention_status(conn, now=now)["stale"])


def test_partitions_are_made_ahead_for_locations_and_analytics(private: tuple[Engine, str]) -> None:
    engine, _ = private
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    created = locations.ensure_partitions(engine, now=now + dt.timedelta(hours=3))
    assert created["therapist_locations"] >= 3  # the hours beyond the 48 already there
    with engine.connect() as conn, conn.begin():
        uppers = [p.upper for p in locations.partitions(conn) if p.upper is not None]
        analytics = conn.execute(text(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'analytics_events'::regclass")).scalar_one()
        forced = conn.execute(text(
            "SELECT bool_and(c.relrowsecurity AND c.relforcerowsecurity) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = 'therapist_locations'::regclass")
        ).scalar_one()
    assert max(uppers) == hour(now) + dt.timedelta(hours=3 + locations.HOURS_AHEAD + 1)
    assert analytics >= 4 and forced is True


def test_a_partition_whose_lock_cannot_be_had_is_left_for_the_next_run(private: tuple[Engine, str]) -> None:
    engine, url = private
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    later = now + dt.timedelta(hours=3)  # three more hours have expired
    with engine.connect() as conn, conn.begin():
        expired = sorted((p for p in locations.partitions(conn) if p.lower is not None and p.upper is not None
                          and p.upper <= later - locations.RETENTION), key=lambda p: p.lower)
    assert len(expired) >= 2
    held = expired[0].name
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as blocker:
        blocker.execute(f'LOCK TABLE "{held}" IN SHARE UPDATE EXCLUSIVE MODE')
        report = locations.prune(engine, now=later, lock_timeout_ms=200)
        blocker.rollback()
    assert report["deferred"] == [{"partition": held, "reason": "lock timeout"}]
    assert held not in report["dropped"] and len(report["dropped"]) == len(expired) - 1

    again = locations.prune(engine, now=later, lock_timeout_ms=200)
    assert again["dropped"] == [held] and again["deferred"] == []


def test_a_reader_still_seeing_the_table_leaves_one_hour_pending_and_the_next_run_finishes_it(
    private: tuple[Engine, str],
) -> None:
    engine, url = private
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    later = now + dt.timedelta(hours=6)
    with engine.connect() as conn, conn.begin():
        expired = sorted((p for p in locations.partitions(conn) if p.lower is not None and p.upper is not None
                          and p.upper <= later - locations.RETENTION), key=lambda p: p.lower)
    assert len(expired) >= 2
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as reader:
        reader.execute("SELECT count(*) FROM therapist_locations")  # an open transaction that saw every hour
        report = locations.prune(engine, now=later, lock_timeout_ms=200)
        reader.rollback()
    first = expired[0].name
    assert report["dropped"] == []
    assert report["deferred"][0] == {"partition": first, "reason": "lock timeout"}
    assert {d["reason"] for d in report["deferred"][1:]} == {f"waiting for {first} to finish detaching"}

    again = locations.prune(engine, now=later, lock_timeout_ms=200)
    assert again["dropped"] == [p.name for p in expired] and again["deferred"] == []


def test_the_hourly_schedule_is_seeded(private: tuple[Engine, str]) -> None:
    engine, _ = private
    with engine.connect() as conn:
        kind, cron, enabled = conn.execute(text(
            "SELECT kind, cron, enabled FROM schedules WHERE name = 'locations.prune'")).one()
    assert (kind, cron, enabled) == ("locations.prune", "0 * * * *", True)


def test_the_prune_task_runs_as_a_job(private: tuple[Engine, str], service_env: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.tasks  # noqa: F401  (registers one task per declared kind)
    from workers.app import celery

    engine, url = private
    monkeypatch.setenv("DATABASE_URL", url)  # the task reads its database from the settings
    with factory.as_worker(engine) as session:
        job = commands.submit(session, "locations.prune", {"batch_rows": 1000}, enqueue=lambda *_: None,
                              key=str(uuid.uuid4()), scope="scheduler").job
    assert celery.tasks["locations.prune"].run(str(job.id)) == "succeeded"
    with engine.connect() as conn:
        status, result = conn.execute(text("SELECT status, result FROM jobs WHERE id = :j"), {"j": job.id}).one()
    assert status == "succeeded" and {"rows_removed", "partitions_dropped", "stale"} <= set(result)


def test_a_large_expired_hour_is_reported_from_the_catalog_not_counted(
        private: tuple[Engine, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting a million-row hour before dropping it cost a scan (issue 16): above
    EXACT_COUNT_UP_TO rows the report takes the analysed estimate and says so."""
    engine, _ = private
    monkeypatch.setattr(locations.retention, "EXACT_COUNT_UP_TO", 100)
    vendor = factory.vendor(engine)
    therapist = factory.therapist(engine, vendor, codes=["SWD"])
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    this_hour = hour(now)
    insert(engine, therapist, [this_hour + dt.timedelta(seconds=s) for s in range(0, 3000, 2)])
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE therapist_locations")
    later = now + dt.timedelta(hours=26)  # this hour (and every earlier one) is wholly expired then
    with engine.connect() as conn, conn.begin():
        first = min(p.lower for p in locations.partitions(conn) if p.lower is not None)
    in_whole_hours = count(engine, "timestamp >= :a AND timestamp < :b", a=first, b=hour(later - locations.RETENTION))
    assert in_whole_hours >= 1500

    report = locations.prune(engine, now=later)

    assert report["rows_in_dropped_partitions_estimated"] is True
    assert abs(report["rows_in_dropped_partitions"] - in_whole_hours) <= in_whole_hours * 0.02
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0


def _three_hours_expired(engine: Engine) -> tuple[dt.datetime, list[locations.Partition]]:
    """A `now` at which the three oldest hourly partitions left (earlier tests pruned some) have
    expired, and those partitions, oldest first."""
    with engine.connect() as conn, conn.begin():
        hours = sorted((p for p in locations.partitions(conn) if p.lower is not None and p.upper is not None),
                       key=lambda p: p.name)  # therapist_locations_pYYYYMMDDTHH: in time order
    last = hours[2].upper
    assert last is not None
    return last + locations.RETENTION + dt.timedelta(minutes=1), hours[:3]


def _a_ping_in_each_of_three_expired_hours(engine: Engine, *, minute: int
                                           ) -> tuple[uuid.UUID, dt.datetime, list[locations.Partition]]:
    """The reclaim area emptied of what earlier tests left, and a new therapist's ping `minute` minutes
    into each of the three hours `_three_hours_expired` gives: the therapist, its `now` and those hours."""
    locations.reclaim(engine)
    therapist = factory.therapist(engine, factory.vendor(engine), codes=["SWD"])
    later, expired = _three_hours_expired(engine)
    insert(engine, therapist, [p.lower + dt.timedelta(minutes=minute) for p in expired if p.lower is not None])
    return therapist, later, expired


def test_expired_hours_go_in_one_transaction_while_therapists_are_being_written(
        private: tuple[Engine, str]) -> None:
    """Dropping the hours while attached never touches `therapists`: detaching them first copied
    the foreign key onto each (triggers on therapists) and the drop locked therapists exclusively,
    so an open write there held up the prune."""
    engine, url = private
    vendor = factory.vendor(engine)
    therapist = factory.therapist(engine, vendor, codes=["SWD"])
    later, expired = _three_hours_expired(engine)
    insert(engine, therapist, [p.lower + dt.timedelta(minutes=5) for p in expired[-1:] if p.lower is not None])
    kept = count(engine, "timestamp >= :c", c=later - locations.RETENTION)
    locations.ensure_partitions(engine, now=later)  # attaching an hour ahead does lock therapists (its foreign key)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as writer:
        writer.execute("UPDATE therapists SET name = name WHERE id = %s", (therapist,))  # ROW EXCLUSIVE, held
        report = locations.prune(engine, now=later, lock_timeout_ms=300)
        writer.rollback()

    assert report["dropped_in_one_transaction"] is True and report["deferred"] == []
    assert report["dropped"] == [p.name for p in expired]
    assert report["rows_in_dropped_partitions"] >= 1 and report["rows_in_dropped_partitions_estimated"] is False
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0
    assert count(engine, "timestamp >= :c", c=later - locations.RETENTION) == kept  # nothing unexpired dropped


def test_a_prune_that_meets_a_held_table_lock_detaches_concurrently_and_still_drops(
        private: tuple[Engine, str]) -> None:
    """An open insert holds the table: the one-transaction drop gives up after its short lock
    timeout (inserts would queue behind it), and each hour is detached concurrently instead once
    the insert commits."""
    engine, url = private
    vendor = factory.vendor(engine)
    therapist = factory.therapist(engine, vendor, codes=["SWD"])
    later, expired = _three_hours_expired(engine)
    stamps = [p.lower + dt.timedelta(minutes=1) for p in expired if p.lower is not None]
    insert(engine, therapist, stamps)
    kept = count(engine, "timestamp >= :c", c=later - locations.RETENTION)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as holder:
        fresh = later - locations.RETENTION + dt.timedelta(minutes=5)
        holder.execute("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
                       "VALUES (%s, 18.5, 73.8, %s)", (therapist, fresh))
        release = threading.Timer(1.0, holder.commit)
        release.start()
        try:
            report = locations.prune(engine, now=later, exclusive_lock_timeout_ms=100, lock_timeout_ms=10_000)
        finally:
            release.join()

    assert report["dropped_in_one_transaction"] is False and report["deferred"] == []
    assert report["dropped"] == [p.name for p in expired]
    assert report["rows_in_dropped_partitions"] == len(stamps)
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0
    assert count(engine, "timestamp >= :c", c=later - locations.RETENTION) == kept + 1


def _reclaim_area(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return locations.to_reclaim(conn)


def _reclaim_name(partition: locations.Partition) -> str:
    return locations.retention.RECLAIM_PREFIX + partition.name.removeprefix("therapist_locations_")


def test_expired_hours_leave_the_table_at_once_and_their_files_are_freed_by_the_reclaim(
        private: tuple[Engine, str]) -> None:
    """The prune detaches the expired hours into the reclaim area in one transaction (no file
    freed on its path, issue 16); the reclaim truncates and drops them. Rows are counted once,
    by the prune; nothing expired is visible in between, nothing unexpired goes."""
    engine, _ = private
    locations.reclaim(engine)  # what earlier tests left
    vendor = factory.vendor(engine)
    therapist = factory.therapist(engine, vendor, codes=["SWD"])
    later, expired = _three_hours_expired(engine)
    stamps = [p.lower + dt.timedelta(minutes=m) for p in expired if p.lower is not None for m in (1, 2)]
    insert(engine, therapist, stamps)
    kept = count(engine, "timestamp >= :c", c=later - locations.RETENTION)
    in_hours = count(engine, "timestamp >= :a AND timestamp < :b", a=expired[0].lower, b=expired[-1].upper)

    report = locations.prune(engine, now=later)

    names = [_reclaim_name(p) for p in expired]
    assert report["files_left_to_reclaim"] is True and report["dropped_in_one_transaction"] is True
    assert report["dropped"] == [p.name for p in expired] and report["to_reclaim"] == names
    assert report["rows_in_dropped_partitions"] == in_hours >= len(stamps)
    assert report["rows_in_dropped_partitions_estimated"] is False
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0
    assert count(engine, "timestamp >= :c", c=later - locations.RETENTION) == kept
    assert _reclaim_area(engine) == names
    with engine.connect() as conn:  # read partition by partition, the same as the whole table's
        oldest = conn.execute(text("SELECT min(timestamp) FROM therapist_locations")).scalar_one()
    assert report["oldest_ping_at"] == (oldest.isoformat() if oldest else None)

    reclaimed = locations.reclaim(engine)

    assert reclaimed["reclaimed"] == names and reclaimed["tables_reclaimed"] == 3
    assert reclaimed["bytes_freed"] > 0 and reclaimed["left_to_reclaim"] == []
    assert _reclaim_area(engine) == [] and "rows_removed" not in reclaimed  # counted by the prune, once
    assert locations.reclaim(engine)["tables_reclaimed"] == 0  # nothing left: a second reclaim does nothing


def test_a_crash_between_prune_and_reclaim_leaves_the_hours_for_the_next_reclaim(
        private: tuple[Engine, str]) -> None:
    """No reclaim ran after a prune (the worker died): the next prune takes its own hours out and
    says what is waiting; one reclaim then frees both runs' hours. Each row is reported once."""
    engine, _ = private
    _, later, expired = _a_ping_in_each_of_three_expired_hours(engine, minute=3)
    expired_rows = count(engine, "timestamp < :c", c=later - locations.RETENTION)
    first = locations.prune(engine, now=later - dt.timedelta(hours=1))  # two of the three hours
    # ... the worker is gone here: no reclaim ...
    second = locations.prune(engine, now=later)

    assert first["rows_removed"] + second["rows_removed"] == expired_rows >= 3
    assert first["to_reclaim"] == [_reclaim_name(p) for p in expired[:2]]
    assert second["to_reclaim"] == [_reclaim_name(p) for p in expired]  # its own and the one left
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0

    reclaimed = locations.reclaim(engine)
    assert reclaimed["reclaimed"] == [_reclaim_name(p) for p in expired] and _reclaim_area(engine) == []


def test_a_reclaim_whose_drop_cannot_lock_therapists_in_time_frees_the_files_and_finishes_later(
        private: tuple[Engine, str]) -> None:
    """Dropping a detached hour takes ACCESS EXCLUSIVE on therapists (its copied foreign key): a
    reader of therapists is kept waiting at most the short lock timeout, the files are freed
    anyway (TRUNCATE locks only the hours), and the next reclaim drops the empty tables."""
    engine, url = private
    _, later, expired = _a_ping_in_each_of_three_expired_hours(engine, minute=4)
    assert locations.prune(engine, now=later)["files_left_to_reclaim"] is True
    names = [_reclaim_name(p) for p in expired]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as reader:
        reader.execute("SELECT count(*) FROM therapists")  # ACCESS SHARE on therapists, held
        began = time.perf_counter()
        held = locations.reclaim(engine, exclusive_lock_timeout_ms=150)
        waited = time.perf_counter() - began
        reader.rollback()

    assert held["reclaimed"] == [] and held["left_to_reclaim"] == names and held["bytes_freed"] > 0
    assert waited < 1.5  # the DROP gave up after its 150 ms, not the 2 s lock timeout
    with engine.connect() as conn:
        assert conn.execute(text(f'SELECT count(*) FROM "{names[0]}"')).scalar_one() == 0  # emptied
    again = locations.reclaim(engine)
    assert again["reclaimed"] == names and again["left_to_reclaim"] == [] and _reclaim_area(engine) == []


def test_a_prune_that_cannot_detach_in_time_drops_in_place_and_leaves_nothing_to_reclaim(
        private: tuple[Engine, str]) -> None:
    """An open write on therapists: detaching (which copies the foreign key, SHARE ROW EXCLUSIVE
    on therapists) gives up within the short lock timeout and the hours are dropped in place, the
    parent's inserts having waited no longer than that."""
    engine, url = private
    therapist, later, expired = _a_ping_in_each_of_three_expired_hours(engine, minute=5)
    in_hours = count(engine, "timestamp >= :a AND timestamp < :b", a=expired[0].lower, b=expired[-1].upper)
    locations.ensure_partitions(engine, now=later)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as writer:
        writer.execute("UPDATE therapists SET name = name WHERE id = %s", (therapist,))
        report = locations.prune(engine, now=later, lock_timeout_ms=300)
        writer.rollback()

    assert report["files_left_to_reclaim"] is False and report["to_reclaim"] == []
    assert report["dropped_in_one_transaction"] is True and report["dropped"] == [p.name for p in expired]
    assert report["rows_in_dropped_partitions"] == in_hours >= 3 and report["durations_ms"]["detach"] < 1500
    assert count(engine, "timestamp < :c", c=later - locations.RETENTION) == 0


def test_the_prune_job_submits_the_reclaim_as_a_job_of_its_own(
        private: tuple[Engine, str], service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.tasks  # noqa: F401  (registers one task per declared kind)
    from workers.app import celery

    engine, url = private
    monkeypatch.setenv("DATABASE_URL", url)
    _, later, _ = _a_ping_in_each_of_three_expired_hours(engine, minute=6)
    with engine.connect() as conn:  # the job's clock is the database's: a retention that puts its cutoff at `later`'s
        now = conn.execute(text("SELECT now()")).scalar_one()
    monkeypatch.setattr(locations, "RETENTION", now - (later - locations.RETENTION))
    with factory.as_worker(engine) as session:
        job = commands.submit(session, "locations.prune", {}, enqueue=lambda *_: None,
                              key=str(uuid.uuid4()), scope="scheduler").job
    assert celery.tasks["locations.prune"].run(str(job.id)) == "succeeded"
    with engine.connect() as conn:
        result = conn.execute(text("SELECT result FROM jobs WHERE id = :j"), {"j": job.id}).scalar_one()
        follow_up = conn.execute(text("SELECT kind, params, status FROM jobs WHERE id = :j"),
                                 {"j": result["reclaim_job_id"]}).one()
    assert result["to_reclaim"] and result["rows_removed"] >= 3
    assert follow_up == ("locations.prune", {"reclaim_only": True}, "queued")

    assert celery.tasks["locations.prune"].run(result["reclaim_job_id"]) == "succeeded"
    with engine.connect() as conn:
        reclaimed = conn.execute(text("SELECT result FROM jobs WHERE id = :j"),
                                 {"j": result["reclaim_job_id"]}).scalar_one()
    assert reclaimed["reclaimed"] == result["to_reclaim"] and reclaimed["left_to_reclaim"] == []
    assert _reclaim_area(engine) == []
