"""Live locations at fleet scale, each against its baseline in the same run:

1. ingestion: pings per second posted through the API (POST /api/v1/locations under gunicorn, several
   therapists' phones at once, batches of pings: validation, row-level security, the last-position
   trigger, Redis) against a COPY of the same rows straight into PostgreSQL;
2. pruning: 10 million expired pings removed by the hourly job (take the expired hour partitions
   out, delete the edge in batches), then their files freed by the follow-up reclaim, each timed,
   against a plain `DELETE ... WHERE timestamp < <now - 24 hours>` on an identical, unpartitioned
   table holding the same rows.

Scratch database `<db>_locations_bench` (migrated here, dropped after unless --keep) on the
configured PostgreSQL server, the configured Redis database (REDIS_URL; its live-location keys deleted
before and after).
Rows are generated with set-based SQL (generate_series), an hour of pings per statement.
Usage: python bench/locations.py [--scale 1.0] [--seconds 10] [--clients 8] [--batch 100] [--rounds 3] [--keep]
  --scale 0.01 prunes 100,000 pings: a quick run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import serve, worker_cpu_seconds  # noqa: E402
from bench.dispatch import forget_positions  # noqa: E402
from cli import alembic_config  # noqa: E402
from ombaro import locations  # noqa: E402
from ombaro.config import load_settings  # noqa: E402

THERAPISTS = 1000
COLUMNS = "therapist_id, latitude, longitude, accuracy, speed, heading, battery_level, is_moving, timestamp"

SETUP = [
    "INSERT INTO auth.users (id, email, encrypted_password) VALUES (md5('vendor:1')::uuid, 'v1@bench.example', '!')",
    """INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, contact_email,
                            verification_status)
       VALUES (md5('vendor:1')::uuid, 'Spa', '{"city": "Pune", "latitude": 18.52, "longitude": 73.85}', 'Owner',
               '+919800000000', 'v1@bench.example', 'verified')""",
    """INSERT INTO therapists (id, vendor_id, name, email, mobile)
       SELECT md5('therapist:' || n)::uuid, md5('vendor:1')::uuid, 'T' || n, 't' || n || '@bench.example',
              '+919700000000'
       FROM generate_series(1, %(therapists)s) AS n""",
]
# One hour of pings starting at %(start)s, %(rows)s of them evenly spread, from 1,000 therapists.
HOUR_OF_PINGS = f"""
INSERT INTO therapist_locations (id, {COLUMNS})
SELECT gen_random_uuid(), md5('therapist:' || (1 + g %% {THERAPISTS}))::uuid, 18.45 + random() * 0.15,
       73.75 + random() * 0.15, 8.5, 22.0, 90.0, 70, true,
       %(start)s::timestamptz + (g::float8 / %(rows)s) * %(span)s::interval
FROM generate_series(0, %(rows)s - 1) AS g
"""


# --- ingestion ----------------------------------------------------------------------------------------

def therapist_logins(count: int) -> list[tuple[str, str]]:
    """`count` therapists with logins and access tokens: (therapist id, token)."""
    from ombaro.db import get_engine
    from ombaro.identity import accounts, tokens

    settings = load_settings()
    made = []
    with Session(get_engine()) as session, session.begin():
        vendor = session.execute(text("SELECT id FROM vendors LIMIT 1")).scalar_one()
        for n in range(count):
            therapist = accounts.create_therapist(
                session, settings, vendor_id=vendor, email=f"phone{n}@bench.example", mobile=f"+91966{n:07d}",
                password="bench-password-1", name=f"Phone {n}", details={})
            made.append((str(therapist.id), tokens.issue_access_token(settings, therapist.user_id, "therapist")))
    return made


def post_pings(port: int, seconds: float, logins: list[tuple[str, str]], batch: int) -> tuple[float, list[tuple]]:
    """Pings accepted per second from one keep-alive connection per therapist, and the rows sent."""
    sent: list[list[tuple]] = [[] for _ in logins]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def phone(n: int) -> None:
        therapist, token = logins[n]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        rng = random.Random(n)
        lat, lon = 18.52 + rng.random() / 10, 73.85 + rng.random() / 10
        while time.monotonic() < stop_at:
            now = dt.datetime.now(dt.UTC)
            pings = []
            for k in range(batch):
                lat, lon = lat + rng.uniform(-1e-4, 1e-4), lon + rng.uniform(-1e-4, 1e-4)
                stamp = now - dt.timedelta(seconds=(batch - k) * 0.5)
                pings.append({"latitude": round(lat, 7), "longitude": round(lon, 7), "accuracy": 8.5, "speed": 22.0,
                              "heading": 90.0, "battery": 70, "is_moving": True, "timestamp": stamp.isoformat()})
            try:
                conn.request("POST", "/api/v1/locations", body=json.dumps({"pings": pings}).encode(),
                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
                response = conn.getresponse()
                response.read()
            except OSError as exc:  # a stalled server: say so rather than count a short round
                errors.append(f"phone {n}: {exc!r} at {dt.datetime.now(dt.UTC):%H:%M:%S}")
                return
            if response.status != 201:
                errors.append(f"HTTP {response.status}")
                return
            sent[n].extend((therapist, p["latitude"], p["longitude"], 8.5, 22.0, 90.0, 70, True, p["timestamp"])
                           for p in pings)
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=phone, args=(n,)) for n in range(len(logins))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    rows = [row for rows in sent for row in rows]
    return len(rows) / (time.monotonic() - began), rows


def cpu_by_worker(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """utime + stime of each gunicorn worker (a child of the arbiter `proc`) by pid, from /proc: how the
    phones' keep-alive connections fell on the workers (each connection stays on the worker that
    accepted it for the whole round; docs/benchmarks.md, issue 16 session 6)."""
    spent = {}
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return {}
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        spent[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


def copy_rows(plain_url: str, rows: list[tuple]) -> float:
    """Rows per second for one COPY of `rows` into therapist_locations (same table, same trigger)."""
    with psycopg.connect(plain_url) as conn:
        began = time.perf_counter()
        with conn.cursor().copy(f"COPY therapist_locations ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return len(rows) / (time.perf_counter() - began)


def ingestion_rounds(server: tuple[subprocess.Popen[bytes], int], plain_url: str, logins: list[tuple[str, str]], *,
                     seconds: float, batch: int, rounds: int) -> tuple[float, float, float, int]:
    """Alternating rounds (the API for `seconds`, then one COPY of the rows it stored), so both see the
    same load: the medians of the API's and COPY's rates and of the per-round ratios, and the rows.
    Each round also prints the gunicorn workers' CPU a request, the steadier figure on a shared machine."""
    proc, port = server
    post_pings(port, 1, logins, batch)  # warm up
    api_rates, copy_rates, ratios, total = [], [], [], 0
    for n in range(rounds):
        cpu, by_worker = worker_cpu_seconds(proc), cpu_by_worker(proc)
        api_rate, rows = post_pings(port, seconds, logins, batch)
        cpu_ms = (worker_cpu_seconds(proc) - cpu) * 1000 / max(1, len(rows) // batch)
        split = sorted((cpu_by_worker(proc).get(pid, 0.0) - spent for pid, spent in by_worker.items()), reverse=True)
        copy_rate = copy_rows(plain_url, rows)
        api_rates.append(api_rate)
        copy_rates.append(copy_rate)
        ratios.append(api_rate / copy_rate)
        total += len(rows)
        print(f"ingestion round {n + 1}/{rounds}: {len(rows):,} pings through the API at {api_rate:,.0f}/s; the same "
              f"rows by COPY at {copy_rate:,.0f}/s; ratio {api_rate / copy_rate:.3f}; worker CPU {cpu_ms:.2f} ms a "
              f"request (load {os.getloadavg()[0]:.1f}); the workers' CPU in the round "
              f"{' / '.join(f'{spent:.2f}' for spent in split)} s",
              flush=True)
    return statistics.median(api_rates), statistics.median(copy_rates), statistics.median(ratios), total


# --- pruning ------------------------------------------------------------------------------------------

def load_pings(conn: psycopg.Connection, *, cutoff: dt.datetime, now: dt.datetime, expired: int, fresh: int) -> None:
    """`expired` pings evenly over the ten hours before the cutoff (ten hourly partitions, the last
    ending at the cutoff: the job runs a minute past the hour) and `fresh` over the day after it.
    A bulk load, as a restore would do it: the table's primary key and indexes are dropped first and
    built again after (one sort per index and partition instead of a random B-tree insert per row),
    each expired hour is one INSERT ... SELECT of generate_series, and the caller has
    turned off the triggers and foreign-key checks that are not the point (session_replication_role)."""
    conn.execute("SET maintenance_work_mem = '256MB'")
    conn.execute(f"ALTER TABLE therapist_locations DROP CONSTRAINT {PRIMARY_KEY}")
    for name in LOCATION_INDEXES:
        conn.execute(f"DROP INDEX {name}")
    per_hour = expired // 10
    for hour in range(10):
        start = cutoff - dt.timedelta(hours=10 - hour)
        began = time.perf_counter()
        conn.execute(HOUR_OF_PINGS, {"start": start, "rows": per_hour, "span": "1 hour"})
        print(f"  expired hour {hour + 1:2}/10: {per_hour:,} pings in {time.perf_counter() - began:5.1f} s", flush=True)
    conn.execute(HOUR_OF_PINGS, {"start": cutoff, "rows": fresh, "span": str(now - cutoff)})
    began = time.perf_counter()
    add_indexes(conn, "therapist_locations")
    print(f"  primary key and indexes built in {time.perf_counter() - began:5.1f} s", flush=True)


PRIMARY_KEY = "pk_therapist_locations"
LOCATION_INDEXES = {"idx_therapist_locations_timestamp": "timestamp DESC",  # as migration 0004 makes them
                    "idx_therapist_locations_latest": "therapist_id, timestamp DESC"}


def add_indexes(conn: psycopg.Connection, table: str) -> None:
    """The primary key and indexes of therapist_locations (0004's), named after `table`."""
    suffix = table.removeprefix("therapist_locations")
    conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {PRIMARY_KEY}{suffix} PRIMARY KEY (id, timestamp)")
    for name, columns in LOCATION_INDEXES.items():
        conn.execute(f"CREATE INDEX {name}{suffix} ON {table} ({columns})")


def insert_alongside(plain_url: str, stamp: dt.datetime, stop: threading.Event, waits: list[float]) -> None:
    """A phone's insert every 5 ms while the prune runs: how long the hot path waits on it."""
    with psycopg.connect(plain_url, autocommit=True) as conn:
        while not stop.is_set():
            began = time.perf_counter()
            conn.execute("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
                         "VALUES (md5('therapist:1')::uuid, 18.5, 73.8, %s)", (stamp,))
            waits.append(time.perf_counter() - began)
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 prunes 10 million pings")
    parser.add_argument("--seconds", type=float, default=10, help="length of the ingestion run")
    parser.add_argument("--clients", type=int, default=8, help="phones posting at once")
    parser.add_argument("--batch", type=int, default=100, help="pings per request")
    parser.add_argument("--rounds", type=int, default=3, help="alternating ingestion rounds (API, then COPY)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--only", choices=("ingestion", "pruning"), help="run one of the two parts")
    args = parser.parse_args()

    expired, fresh = round(10_000_000 * args.scale), round(1_000_000 * args.scale)
    settings = load_settings()
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_locations_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = make_url(bench_url).set(drivername="postgresql").render_as_string(hide_password=False)
    redis_url = settings.redis_url  # the caller's own database: the machine is shared
    forget_positions(redis.Redis.from_url(redis_url))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    from ombaro.access.permissions import seed_permissions

    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": redis_url, "OMBARO_LOG_LEVEL": "WARNING",
           # a worker killed for a stalled heartbeat first prints its threads' stacks (the hang, docs/benchmarks.md)
           "GUNICORN_CMD_ARGS": "--config python:bench.gunicorn_stalls"}
    os.environ.update(DATABASE_URL=bench_url, REDIS_URL=redis_url)
    engine = create_engine(bench_url)
    with Session(engine) as session, session.begin():
        seed_permissions(session)
    server = None
    try:
        with psycopg.connect(plain_url, autocommit=True) as conn:
            for statement in SETUP:
                conn.execute(statement, {"therapists": THERAPISTS})
        api_rate = copy_rate = ratio = None
        ingested = 0
        if args.only != "pruning":
            logins = therapist_logins(args.clients)
            server = serve("web:create_app()", env)
            api_rate, copy_rate, ratio, ingested = ingestion_rounds(server, plain_url, logins,
                                                                    seconds=args.seconds, batch=args.batch,
                                                                    rounds=args.rounds)
        if args.only != "ingestion":
            # Pruning: the catch-all below the first hour goes (it is empty), so the ten expired hours
            # get partitions of their own, as a table pruned every hour for a while would have.
            with engine.connect() as conn:
                now = conn.exec_driver_sql("SELECT date_trunc('hour', now()) + interval '1 minute'").scalar_one()
            cutoff = now - locations.RETENTION
            with psycopg.connect(plain_url, autocommit=True) as conn:
                conn.execute("ALTER TABLE therapist_locations DETACH PARTITION therapist_locations_history")
                conn.execute("DROP TABLE therapist_locations_history")
                conn.execute("SELECT ensure_hourly_partitions('therapist_locations', %s, 12)",
                             (cutoff - dt.timedelta(hours=11),))
                print(f"loading {expired:,} expired and {fresh:,} fresh pings", flush=True)
                conn.execute("SET synchronous_commit = off")
                if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
                    conn.execute("SET session_replication_role = replica")  # bulk load: skip FK checks and triggers
                load_pings(conn, cutoff=cutoff, now=now, expired=expired, fresh=fresh)
                conn.execute("RESET session_replication_role")
                began = time.perf_counter()
                conn.execute("CREATE TABLE therapist_locations_plain (LIKE therapist_locations INCLUDING DEFAULTS "
                             "INCLUDING CONSTRAINTS)")
                conn.execute("INSERT INTO therapist_locations_plain SELECT * FROM therapist_locations")
                add_indexes(conn, "therapist_locations_plain")
                print(f"  identical unpartitioned copy in {time.perf_counter() - began:5.1f} s", flush=True)
                conn.execute("VACUUM ANALYZE therapist_locations")
                conn.execute("VACUUM ANALYZE therapist_locations_plain")
                total = conn.execute("SELECT count(*) FROM therapist_locations").fetchone()[0]
                stale = conn.execute("SELECT count(*) FROM therapist_locations WHERE timestamp < %s",
                                     (cutoff,)).fetchone()[0]

            # The hours ahead exist already in a table pruned every hour (each run adds one): made
            # before the clock starts, so the figure is the dropping, not a first run's 48 new tables.
            locations.ensure_partitions(engine, now=now)
            waits: list[float] = []
            stop = threading.Event()
            inserter = threading.Thread(target=insert_alongside, args=(plain_url, now, stop, waits))
            inserter.start()
            time.sleep(0.2)
            began = time.perf_counter()
            reclaim_seconds = 0.0
            try:
                report = locations.prune(engine, now=now)
                prune_seconds = time.perf_counter() - began
                # The follow-up job's work: free the files of the hours the prune took out. Timed
                # apart, inserts still running alongside.
                began = time.perf_counter()
                reclaimed = locations.reclaim(engine)
                reclaim_seconds = time.perf_counter() - began
            finally:
                stop.set()
                inserter.join()
            with psycopg.connect(plain_url, autocommit=True) as conn:
                began = time.perf_counter()
                deleted = conn.execute("DELETE FROM therapist_locations_plain WHERE timestamp < %s", (cutoff,)).rowcount
                delete_seconds = time.perf_counter() - began
                began = time.perf_counter()
                conn.execute("VACUUM therapist_locations_plain")  # the DELETE's dead rows; a dropped partition has none
                vacuum_seconds = time.perf_counter() - began
                left = conn.execute("SELECT count(*) FROM therapist_locations WHERE timestamp < %s",
                                    (cutoff,)).fetchone()[0]
        engine.dispose()
    finally:
        if server is not None:
            os.killpg(server[0].pid, signal.SIGTERM)
            server[0].wait(10)
        forget_positions(redis.Redis.from_url(redis_url))
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')

    if api_rate is not None and copy_rate is not None and ratio is not None:
        print(f"\ningestion ({args.clients} phones, {args.batch} pings a request, {args.rounds} rounds of "
              f"{args.seconds:.0f} s, {ingested:,} pings; medians):")
        print(f"  API  {api_rate:10,.0f} pings/s")
        print(f"  COPY {copy_rate:10,.0f} pings/s   ratio API/COPY {ratio:.3f}")
    if args.only == "ingestion":
        return
    print(f"pruning {stale:,} expired of {total:,} pings (cutoff {cutoff:%Y-%m-%d %H:%M} UTC):")
    steps = ", ".join(f"{step} {ms / 1000:.2f} s" for step, ms in report["durations_ms"].items())
    print(f"  prune job {prune_seconds:8.2f} s: {report['partitions_dropped']} partitions dropped "
          f"({report['rows_in_dropped_partitions']:,} rows), {report['rows_deleted_at_edge']:,} rows deleted at the "
          f"edge, {left:,} expired left ({steps})")
    freed = ", ".join(f"{step} {ms / 1000:.2f} s" for step, ms in reclaimed["durations_ms"].items())
    print(f"  reclaim   {reclaim_seconds:8.2f} s: {reclaimed['tables_reclaimed']} tables, "
          f"{reclaimed['bytes_freed'] / 2**20:,.0f} MiB freed, {len(reclaimed['left_to_reclaim'])} left ({freed})")
    waits.sort()
    print(f"  inserts alongside the prune and reclaim: {len(waits)}, median {waits[len(waits) // 2] * 1000:.1f} ms, "
          f"longest {waits[-1] * 1000:.0f} ms")
    print(f"  DELETE    {delete_seconds:8.2f} s: {deleted:,} rows; then VACUUM {vacuum_seconds:.2f} s to reclaim them")
    both = prune_seconds + reclaim_seconds
    print(f"  ratio DELETE/prune {delete_seconds / prune_seconds:.1f}; (DELETE + VACUUM)/prune "
          f"{(delete_seconds + vacuum_seconds) / prune_seconds:.1f}")
    print(f"  ratio DELETE/(prune + reclaim) {delete_seconds / both:.1f}; (DELETE + VACUUM)/(prune + reclaim) "
          f"{(delete_seconds + vacuum_seconds) / both:.1f}")


if __name__ == "__main__":
    main()
