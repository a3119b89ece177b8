"""The cost of the job log's row-level security by kind (migration 0009): staff listing the 50
latest jobs they may see (`commands.list_jobs`, as `GET /api/v1/jobs` does), out of a realistic
command log dominated by frequent system firings, as the request role with claims (the policies
pick the rows), against the owner making the same call with the kinds that role may see named
explicitly (no policy applies).

Roles: IT (reports, system and notification kinds: frequent), finance (settlements: weekly runs and
their batches, rare), HR (payroll: monthly runs, rarest). Prints medians and the ratio rls/owner.

Runs against a scratch database (`<db>_jobs_bench`, migrated here, dropped after unless --keep) on
the configured PostgreSQL server (DATABASE_URL or the embedded one).
Usage: python bench/jobs_access.py [--iterations 200] [--days 90] [--keep | --reuse]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.access import database_url  # noqa: E402
from cli import alembic_config  # noqa: E402
from ombaro import commands  # noqa: E402
from ombaro.access.permissions import (  # noqa: E402
    JOB_KIND_PERMISSIONS,
    allowed_by,
    default_grants,
    seed_permissions,
)
from ombaro.db import API_ROLE, act_as  # noqa: E402

# kind -> firings per day: schedules every minute / 5 minutes, bookings' dispatches, weekly and
# monthly money runs with their batches.
PER_DAY = {"campaigns.start_due": 1440, "reports.refresh": 288, "notifications.reminders": 288,
           "notifications.dispatch": 288, "settlements.reconcile": 144, "locations.prune": 24,
           "dispatch.booking": 400, "dispatch.batch": 4, "payments.webhook": 300, "settlements.run": 1 / 7,
           "settlements.run_batch": 3 / 7, "payroll.run": 1 / 30, "payroll.compute_batch": 10 / 30}
ROLES = ("it_department", "finance_department", "hr_department")


def build(url: str, days: int) -> int:
    with psycopg.connect(url) as conn:
        total = 0
        for kind, per_day in PER_DAY.items():
            count = max(1, round(per_day * days))
            total += conn.execute(
                "INSERT INTO jobs (kind, status, params, result, created_at, attempts) "
                "SELECT %(kind)s, 'succeeded', '{\"n\": 1}', '{\"ok\": true}', "
                "now() - (%(days)s * 86400.0 * g / %(count)s) * interval '1 second', 1 "
                "FROM generate_series(1, %(count)s) AS g", {"kind": kind, "days": days, "count": count}).rowcount
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE jobs")
    return total


def seed_grants(url: str) -> None:
    """The default permission matrix, as `ombaro migrate` adds it."""
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        seed_permissions(session)
    engine.dispose()


def visible_kinds(role: str) -> list[str]:
    grants = default_grants()
    return [k for k, (m, a) in JOB_KIND_PERMISSIONS.items() if allowed_by(grants, role, m, a)]


def timed(engine: Engine, kinds: list[str], claims: dict[str, str] | None) -> tuple[float, list[Any]]:
    """One listing through commands.list_jobs, in a transaction of its own (as a request's)."""
    with Session(engine) as session, session.begin():
        if claims is not None:
            act_as(session, API_ROLE, claims)
        began = time.perf_counter()
        ids = [job.id for job in commands.list_jobs(session, kinds=kinds, limit=50)]
        elapsed = time.perf_counter() - began
    if not ids:
        raise RuntimeError("nothing listed: the benchmark would time nothing")
    return elapsed, ids


def measure(url: str, iterations: int) -> dict[str, dict[str, float]]:
    results = {}
    engine = create_engine(url, pool_size=2)
    try:
        for role in ROLES:
            kinds = visible_kinds(role)
            claims = {"sub": str(uuid.uuid4()), "role": role}
            _, owner_ids = timed(engine, kinds, None)
            _, rls_ids = timed(engine, [], claims)
            assert owner_ids == rls_ids, role  # the same 50 jobs
            for _ in range(10):
                timed(engine, kinds, None)
                timed(engine, [], claims)
            timings: dict[str, list[float]] = {"owner": [], "rls": []}
            for i in range(iterations):
                order = [("owner", kinds, None), ("rls", [], claims)]
                for label, k, c in order if i % 2 == 0 else reversed(order):
                    timings[label].append(timed(engine, k, c)[0])
            results[role] = {label: statistics.median(values) * 1000 for label, values in timings.items()}
    finally:
        engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a scratch database kept by --keep")
    args = parser.parse_args()

    url = make_url(database_url())
    bench_db = f"{url.database}_jobs_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = url.set(drivername="postgresql", database=bench_db).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        if not args.reuse:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{bench_db}"')
    total = None
    try:
        from alembic import command

        cfg = alembic_config(bench_url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        if not args.reuse:
            seed_grants(bench_url)
            total = build(plain_url, args.days)
        results = measure(bench_url, args.iterations)
    finally:
        if not (args.keep or args.reuse):
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')

    print(f"PostgreSQL {version[0] if version else '?'}, {total or '?'} jobs over {args.days} days; "
          f"median of {args.iterations} listings (50 latest visible)")
    for role, medians in results.items():
        print(f"{role:<20} owner {medians['owner']:.3f} ms   rls {medians['rls']:.3f} ms   "
              f"ratio rls/owner {medians['rls'] / medians['owner']:.2f}")


if __name__ == "__main__":
    main()
