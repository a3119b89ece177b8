"""Dispatch at fleet scale: single-booking dispatch latency (median and p99) with 50,000 therapists
and live positions (Redis GEO index and the last-position table), and batch matching of 2,000
bookings of one city: its time and its total travel against greedy one-by-one matching on the same
input (the job reports both).

A single dispatch is timed as a worker runs it: claim the job, load and rank the vendor's
therapists, lock, re-check and write the assignment with its decision, record the job's result
(the broker hop is not included: bench/api.py measures submission).

Data is built with set-based SQL (generate_series) in a scratch database (`<db>_dispatch_bench`,
migrated here, dropped after unless --keep) on the configured PostgreSQL server, and the configured Redis database
of the configured server (its live-location keys deleted before and after).
Usage: python bench/dispatch.py [--scale 1.0] [--samples 200] [--batch 2000] [--keep]
  --scale 0.02 builds 1,000 therapists and a 40-booking batch: a quick run.
  --batch 0 times single dispatch only (no batch is built or run).
  --profile PATH writes a cProfile (process CPU clock) of the timed single dispatches to PATH.
Each single dispatch's statements (cursor executes and commits) are counted and timed: the
per-dispatch count and the statements taking the most time are printed with the latency.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import Engine, Pool, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from ombaro import commands, locations  # noqa: E402
from ombaro.config import load_settings  # noqa: E402

PER_VENDOR = 100
BATCH_VENDORS = 20  # the batch is the day of Pune's 20 busiest vendors: about 100 bookings each
CITIES = [("Pune", 18.5204, 73.8567), ("Mumbai", 19.0760, 72.8777), ("Bengaluru", 12.9716, 77.5946),
          ("Delhi", 28.6139, 77.2090), ("Hyderabad", 17.3850, 78.4867)]
CITY_ROWS = ", ".join(f"({i}, '{name}', {lat}, {lon})" for i, (name, lat, lon) in enumerate(CITIES))

# Ids are md5 of a label, so every statement computes any row's id from its number: therapist n is
# md5('therapist:n')::uuid, its vendor is 1 + (n - 1) / 100, vendor v is in city v % 5.
BUILD: list[tuple[str, str]] = [
    ("services", """
        INSERT INTO services (code, name, category, base_price_60min, duration_options)
        VALUES ('SWD', 'Swedish', 'relaxation', 1800, '{60,90,120}'), ('ARO', 'Aromatherapy', 'relaxation', 2000,
                '{60,90}'), ('DPT', 'Deep tissue', 'therapeutic', 2200, '{60,90}')
    """),
    ("users", """
        INSERT INTO auth.users (id, email, encrypted_password)
        SELECT md5(kind || ':' || n)::uuid, kind || n || '@bench.example', '!'
        FROM (SELECT 'vendor' AS kind, n FROM generate_series(1, %(vendors)s) AS n
              UNION ALL SELECT 'customer', n FROM generate_series(1, %(customers)s) AS n) AS who
    """),
    ("customers", """
        INSERT INTO customers (id, preferred_therapist_gender)
        SELECT md5('customer:' || n)::uuid, CASE WHEN n %% 10 = 0 THEN 'female' END
        FROM generate_series(1, %(customers)s) AS n
    """),
    ("vendors", f"""
        INSERT INTO vendors (id, business_name, business_type, business_address, contact_person, contact_mobile,
                             contact_email, verification_status, status)
        SELECT md5('vendor:' || v)::uuid, 'Spa ' || v, 'spa',
               jsonb_build_object('city', c.name, 'street', v || ' MG Road',
                                  'latitude', round((c.lat + (random() - 0.5) * 0.16)::numeric, 6),
                                  'longitude', round((c.lon + (random() - 0.5) * 0.16)::numeric, 6)),
               'Owner', '+9198' || lpad(v::text, 8, '0'), 'vendor' || v || '@bench.example', 'verified', 'active'
        FROM generate_series(1, %(vendors)s) AS v
        JOIN (VALUES {CITY_ROWS}) AS c (i, name, lat, lon) ON c.i = v %% 5
    """),
    ("therapists", """
        INSERT INTO therapists (id, vendor_id, name, email, mobile, gender, specialization, rating, status,
                                availability_status)
        SELECT md5('therapist:' || n)::uuid, md5('vendor:' || (1 + (n - 1) / 100))::uuid, 'Therapist ' || n,
               'therapist' || n || '@bench.example', '+9197' || lpad(n::text, 8, '0'),
               CASE WHEN random() < 0.65 THEN 'female' ELSE 'male' END,
               ARRAY['SWD'] || CASE WHEN random() < 0.6 THEN ARRAY['ARO'] ELSE '{}' END
                            || CASE WHEN random() < 0.4 THEN ARRAY['DPT'] ELSE '{}' END,
               round((3.5 + random() * 1.5)::numeric, 2),
               CASE WHEN random() < 0.96 THEN 'active' ELSE 'inactive' END, 'available'
        FROM generate_series(1, %(therapists)s) AS n
    """),
    ("schedules", """
        INSERT INTO therapist_schedules (therapist_id, day_of_week, start_time, end_time, break_start, break_end)
        SELECT md5('therapist:' || n)::uuid, d, CASE WHEN n %% 3 = 0 THEN '12:00' ELSE '09:00' END::time,
               CASE WHEN n %% 3 = 0 THEN '22:00' ELSE '19:00' END::time,
               time '13:00' + (n %% 4) * interval '30 min', time '13:30' + (n %% 4) * interval '30 min'
        FROM generate_series(1, %(therapists)s) AS n CROSS JOIN generate_series(0, 6) AS d
        WHERE d <> n %% 7
    """),
    ("leaves", """
        INSERT INTO therapist_leaves (therapist_id, leave_type, start_date, end_date, reason, status)
        SELECT md5('therapist:' || n)::uuid, 'casual', %(first_day)s, %(last_day)s, 'bench', 'approved'
        FROM generate_series(1, %(therapists)s) AS n WHERE random() < 0.02
    """),
    # A day's existing work: a fifth of the therapists already have a session on each bench date.
    ("busy bookings", """
        INSERT INTO bookings (id, booking_number, customer_id, vendor_id, booking_type, service_location,
                              booking_date, booking_time, status)
        SELECT md5('busy:' || day || ':' || n)::uuid, 'BUSY-' || day || '-' || n,
               md5('customer:' || (1 + n %% %(customers)s))::uuid, md5('vendor:' || (1 + (n - 1) / 100))::uuid,
               'spa_visit', '{}'::jsonb, day, time '10:00' + floor(random() * 16) * interval '30 min', 'confirmed'
        FROM generate_series(1, %(therapists)s) AS n
        CROSS JOIN (VALUES (%(first_day)s::date), (%(last_day)s::date)) AS days (day)
        WHERE n %% 5 = 0
    """),
    ("busy assignments", """
        INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, service_id,
                                           assignment_date, assignment_time, location_address, location_latitude,
                                           location_longitude, estimated_duration, travel_buffer_minutes)
        SELECT b.id, md5('therapist:' || split_part(b.booking_number, '-', 5))::uuid, b.vendor_id, b.customer_id,
               (SELECT id FROM services WHERE code = 'SWD'), b.booking_date, b.booking_time, 'a customer',
               (v.business_address ->> 'latitude')::numeric + 0.01, (v.business_address ->> 'longitude')::numeric,
               60, 15
        FROM bookings AS b JOIN vendors AS v ON v.id = b.vendor_id WHERE b.booking_number LIKE 'BUSY-%%'
    """),
    # The bookings to dispatch: `samples` one by one on the first day, `batch` of Pune's on the second
# (at its 20 busiest vendors, so that therapists are in demand and the matching has choices to make).
    ("bookings to dispatch", """
        INSERT INTO bookings (id, booking_number, customer_id, vendor_id, booking_type, service_location,
                              booking_date, booking_time, status)
        SELECT md5('todo:' || kind || ':' || g)::uuid, 'OBO-' || kind || '-' || g,
               md5('customer:' || g)::uuid, md5('vendor:' || v)::uuid, 'home_service',
               jsonb_build_object('address', g || ' Customer Lane', 'city', c.name,
                                  'latitude', round(((vv.business_address ->> 'latitude')::numeric
                                                     + (random() - 0.5) * 0.08)::numeric, 6),
                                  'longitude', round(((vv.business_address ->> 'longitude')::numeric
                                                      + (random() - 0.5) * 0.08)::numeric, 6)),
               day, time '10:00' + floor(random() * 16) * interval '30 min', 'confirmed'
        FROM (SELECT 'S' AS kind, g, %(first_day)s::date AS day, 1 + floor(random() * %(vendors)s)::int AS v
              FROM generate_series(1, %(samples)s) AS g
              UNION ALL
              SELECT 'B', g, %(last_day)s::date, 5 * (1 + floor(random() * %(busy_vendors)s)::int)
              FROM generate_series(1, %(batch)s) AS g) AS todo
        JOIN vendors AS vv ON vv.id = md5('vendor:' || v)::uuid
        JOIN (VALUES """ + CITY_ROWS + """) AS c (i, name, lat, lon) ON c.i = v %% 5
    """),
    ("booking items", """
        INSERT INTO booking_items (booking_id, service_id, duration, price, subtotal)
        SELECT b.id, s.id, d.minutes, 2700, 2700
        FROM bookings AS b
        -- one draw per booking (a random() inside the join condition is drawn per service row, which
        -- left some bookings without an item and gave others two)
        CROSS JOIN LATERAL (SELECT CASE WHEN random() < 0.7 THEN 60 ELSE 90 END AS minutes,
                                   CASE WHEN random() < 0.8 THEN 'SWD' ELSE 'ARO' END AS code
                            WHERE b.id IS NOT NULL) AS d
        JOIN services AS s ON s.code = d.code
        WHERE b.booking_number LIKE 'OBO-%%'
    """),
    # Live positions: one fresh ping per therapist near their vendor (the trigger fills the
    # last-position table); Redis gets the same below.
    ("pings", """
        INSERT INTO therapist_locations (therapist_id, latitude, longitude, accuracy, timestamp)
        SELECT t.id, round(((v.business_address ->> 'latitude')::numeric + (random() - 0.5) * 0.1)::numeric, 6),
               round(((v.business_address ->> 'longitude')::numeric + (random() - 0.5) * 0.1)::numeric, 6),
               10, now() - random() * interval '60 seconds'
        FROM therapists AS t JOIN vendors AS v ON v.id = t.vendor_id
    """),
]


def publish_positions(conn: psycopg.Connection, client: redis.Redis) -> int:
    """Every therapist's last position into the GEO index and the 5-minute location keys."""
    rows = conn.execute("SELECT id, vendor_id, latitude, longitude FROM therapist_last_positions").fetchall()
    stamp = dt.datetime.now(dt.UTC).isoformat()
    pipe = client.pipeline(transaction=False)
    for number, (therapist, vendor, lat, lon) in enumerate(rows, start=1):
        pipe.geoadd(locations.geo_key(vendor), (float(lon), float(lat), str(therapist)))
        pipe.set(locations.location_key(therapist), json.dumps(
            {"latitude": float(lat), "longitude": float(lon), "timestamp": stamp, "accuracy": 10}),
            ex=locations.LIVE_TTL_SECONDS)
        if number % 5000 == 0:
            pipe.execute()
    pipe.execute()
    return len(rows)


def forget_positions(client: redis.Redis) -> None:
    """Delete the live-location keys (not FLUSHDB: a test session may be using this database)."""
    for pattern in ("therapist:geo:*", "therapist:location:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])


class StatementLog:
    """Every statement a single dispatch sends (SQLAlchemy cursor executes, and commits), counted
    and timed per dispatch, on every engine of the process (the worker's own included)."""

    def __init__(self) -> None:
        self.dispatches: list[list[tuple[str, float]]] = []
        self._began: dict[int, float] = {}
        self._commit_at: float | None = None

    def next_dispatch(self) -> None:
        self.dispatches.append([])

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._began[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        began = self._began.pop(id(cursor), None)
        if began is not None and self.dispatches:
            self.dispatches[-1].append((" ".join(statement.split())[:90], (time.perf_counter() - began) * 1000))

    def _commit_began(self, conn: Any) -> None:
        self._commit_at = time.perf_counter()

    def _returned(self, *_: Any) -> None:
        # A transaction's connection goes back to the pool right after its COMMIT: that is its time.
        began, self._commit_at = self._commit_at, None
        if began is not None and self.dispatches:
            self.dispatches[-1].append(("COMMIT", (time.perf_counter() - began) * 1000))

    def __enter__(self) -> StatementLog:
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        event.listen(Engine, "commit", self._commit_began)
        event.listen(Pool, "checkin", self._returned)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(Engine, "before_cursor_execute", self._before)
        event.remove(Engine, "after_cursor_execute", self._after)
        event.remove(Engine, "commit", self._commit_began)
        event.remove(Pool, "checkin", self._returned)

    def report(self, *, skip: int) -> None:
        measured = self.dispatches[skip:]
        if not measured:
            return
        counts = [len(d) for d in measured]
        totals: dict[str, list[float]] = {}
        for dispatch in measured:
            for statement, ms in dispatch:
                totals.setdefault(statement, []).append(ms)
        print(f"  statements a dispatch: median {statistics.median(counts):g} (min {min(counts)}, max {max(counts)}); "
              f"the most time over {len(measured)} dispatches (count, median ms, total ms):")
        for statement, times in sorted(totals.items(), key=lambda kv: -sum(kv[1]))[:25]:
            print(f"    {len(times):5d} {statistics.median(times):6.2f} {sum(times):8.1f}  {statement}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 50,000 therapists, a 2,000-booking batch")
    parser.add_argument("--samples", type=int, default=200, help="single dispatches timed")
    parser.add_argument("--batch", type=int, default=2000, help="bookings in the batch at scale 1.0")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of the single dispatches to PATH")
    args = parser.parse_args()

    therapists = max(PER_VENDOR * 5, round(50_000 * args.scale))
    vendors = therapists // PER_VENDOR
    batch = max(10, round(args.batch * args.scale)) if args.batch else 0
    samples = args.samples
    settings = load_settings()
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_dispatch_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = make_url(bench_url).set(drivername="postgresql").render_as_string(hide_password=False)
    redis_url = settings.redis_url
    client = redis.Redis.from_url(redis_url)
    forget_positions(client)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    os.environ.update(DATABASE_URL=bench_url, REDIS_URL=redis_url, OMBARO_LOG_LEVEL="WARNING")
    # The tasks read their database and Redis from the settings; import them after the environment is set.
    import workers.tasks  # noqa: F401  (one generic task per declared kind)
    from workers.app import celery

    dispatch_booking, dispatch_batch = celery.tasks["dispatch.booking"], celery.tasks["dispatch.batch"]

    tomorrow = dt.datetime.now(settings.zone).date() + dt.timedelta(days=1)
    params = {"vendors": vendors, "therapists": therapists, "customers": max(samples, batch) + 10,
              "samples": samples, "batch": batch, "busy_vendors": max(1, min(BATCH_VENDORS, vendors // 5)),
              "first_day": tomorrow, "last_day": tomorrow + dt.timedelta(days=1)}
    try:
        print(f"building: {therapists:,} therapists of {vendors:,} vendors in {len(CITIES)} cities", flush=True)
        with psycopg.connect(plain_url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for name, sql in BUILD:
                began = time.perf_counter()
                conn.execute(sql, params)
                print(f"  {name:<22} {time.perf_counter() - began:6.1f} s", flush=True)
            conn.execute("VACUUM ANALYZE")
            sample_ids = [r[0] for r in conn.execute(
                "SELECT id FROM bookings WHERE booking_number LIKE 'OBO-S-%' ORDER BY booking_number").fetchall()]
            published = publish_positions(conn, client)
        print(f"  live positions in Redis: {published:,}", flush=True)

        engine = create_engine(bench_url)
        with Session(engine) as session, session.begin():
            jobs = [commands.submit(session, "dispatch.booking", {"booking_id": str(b)}, enqueue=lambda *_: None,
                                    key=str(uuid.uuid4())).job.id for b in sample_ids]
        timings: list[float] = []
        cpu: list[float] = []  # this process's CPU a dispatch: steadier than wall time on a shared machine
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        with StatementLog() as statements:
            for job_id in jobs:
                if profiler is not None and len(timings) == 5:  # after the warm-up
                    profiler.enable()
                statements.next_dispatch()
                began, cpu_began = time.perf_counter(), time.process_time()
                ran = dispatch_booking.run(str(job_id))
                timings.append((time.perf_counter() - began) * 1000)
                cpu.append((time.process_time() - cpu_began) * 1000)
                if ran != "succeeded":
                    with psycopg.connect(plain_url) as conn:
                        error = conn.execute("SELECT error FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
                    print(f"  job {job_id}: {ran}: {error}", flush=True)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        with psycopg.connect(plain_url) as conn:
            outcomes = dict(conn.execute("SELECT result ->> 'outcome', count(*) FROM jobs WHERE kind = "
                                         "'dispatch.booking' GROUP BY 1").fetchall())
            publish_positions(conn, client)  # fresh again for the batch
        measured = timings[5:] if len(timings) > 20 else timings  # the first few warm the caches
        result: dict[str, Any] | None = None
        if batch:
            with Session(engine) as session, session.begin():
                batch_job = commands.submit(session, "dispatch.batch", {"date": params["last_day"].isoformat(),
                                                                        "city": "Pune", "vendor_id": None},
                                            enqueue=lambda *_: None, key=str(uuid.uuid4())).job.id
            began = time.perf_counter()
            assert dispatch_batch.run(str(batch_job)) == "succeeded"
            batch_seconds = time.perf_counter() - began
            with psycopg.connect(plain_url) as conn:
                result = conn.execute("SELECT result FROM jobs WHERE id = %s", (batch_job,)).fetchone()[0]
        engine.dispose()
    finally:
        forget_positions(client)
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')

    print(f"\nsingle dispatch, {len(measured)} bookings among {therapists:,} therapists with live positions:")
    print(f"  median {statistics.median(measured):7.1f} ms   p99 {percentile(measured, 0.99):7.1f} ms   "
          f"(outcomes: {outcomes})")
    print(f"  process CPU a dispatch: median {statistics.median(cpu[len(timings) - len(measured):]):.1f} ms")
    statements.report(skip=len(timings) - len(measured))
    if result is not None:
        greedy, chosen = result["greedy_total_travel_km"], result["total_travel_km"]
        print(f"batch matching, {result['bookings']:,} Pune bookings, {result['therapists']:,} therapists:")
        print(f"  {batch_seconds:7.2f} s for the job (solve {result['solve_ms']} ms); plan: {result['plan']}; "
              f"assigned {result['assigned']:,}, unassigned {result['unassigned']:,} "
              f"(greedy would leave {result['greedy']['unassigned']:,})")
        print(f"  total travel {chosen:,.1f} km vs greedy {greedy:,.1f} km: "
              f"ratio batch/greedy {chosen / greedy if greedy else 1:.3f}, saved {greedy - chosen:,.1f} km")
        waves = result["waves"]["total_travel_km"]
        print(f"  the waves alone (before the exact chains or local search): {waves:,.1f} km, ratio waves/greedy "
              f"{waves / greedy if greedy else 1:.3f}")
        bound = result["travel_lower_bound_km"]
        print(f"  lower bound {bound:,.1f} km (chain relaxation, or origins assignment): ratio batch/bound "
              f"{chosen / bound if bound else 1:.3f}, greedy/bound {greedy / bound if bound else 1:.3f}")


if __name__ == "__main__":
    main()
