"""The command log's hot paths as it grows (issue 16, "Cost as the months pass"): submit
(`commands.submit`), claim (the worker's claim UPDATE), relay (`commands.relay`) and the
`GET /api/v1/jobs` listing (Flask's test client, as IT and as HR: frequent and rare kinds) at N
and at 10 N rows of `jobs`, printed as medians and the ratio 10N/N (flat = ~1.0); then the
housekeeping delete rate (`system.housekeeping`'s `housekeeping.enforce`) on the 10 N log, with
the claim and submit latencies seen while it deletes.

The log is made with one `INSERT ... SELECT generate_series` per size: ~5,000 jobs a day in the
mix of the seeded schedules, webhooks and dispatches (older rows added to reach 10 N, as months
of history would). Runs against a scratch database (`<db>_jobs_log_bench`, migrated here, dropped
after unless --keep) on the configured PostgreSQL server (DATABASE_URL or the embedded one), and
the configured Redis (REDIS_URL; the API's rate limits and metrics).
Usage: python bench/jobs.py [--rows 1000000] [--per-day 5000] [--rounds 5] [--reps 50] [--delete-rows 200000]
       python bench/jobs.py --smoke      (2,000 vs 20,000 rows, seconds)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.access import database_url  # noqa: E402
from cli import alembic_config  # noqa: E402
from ombaro import commands, housekeeping  # noqa: E402
from ombaro.access.permissions import seed_permissions  # noqa: E402
from ombaro.config import load_settings  # noqa: E402

PER_DAY = 5000  # the default; --smoke spreads its few rows thinner so some are past their keep
# Slots out of 10,000 per kind: the schedules' firings, webhooks and dispatches (bench/jobs_access.py's
# mix), with the weekly and monthly money runs at one slot each.
MIX = [("campaigns.start_due", 5000), ("reports.refresh", 800), ("notifications.reminders", 800),
       ("notifications.dispatch", 800), ("settlements.reconcile", 400), ("locations.prune", 66),
       ("dispatch.booking", 1100), ("dispatch.batch", 11), ("payments.webhook", 830), ("settlements.run", 1),
       ("settlements.run_batch", 2), ("payroll.run", 1), ("payroll.compute_batch", 1), ("system.ping", 188)]
assert sum(w for _, w in MIX) == 10_000


def kind_case() -> str:
    cases, upto = [], 0
    for kind, weight in MIX:
        upto += weight
        cases.append(f"WHEN (g * 7919) %% 10000 < {upto} THEN '{kind}'")  # 7919: spreads the kinds
    return "CASE " + " ".join(cases) + " END"


def grow(url: str, first: int, last: int, per_day: int) -> float:
    """Jobs number `first`..`last`, job g finished g/per_day days ago; returns the seconds taken."""
    began = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO jobs (kind, status, params, result, attempts, created_at, started_at, finished_at, "
            "enqueued_at, updated_at) "
            f"SELECT {kind_case()}, CASE WHEN g %% 50 = 7 THEN 'failed' WHEN g %% 100 = 3 THEN 'cancelled' "
            "ELSE 'succeeded' END, '{\"n\": 1}', '{\"ok\": true}', 1, t - interval '2 seconds', "
            "t - interval '1 second', t, t, t "
            "FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g, "
            "LATERAL (SELECT now() - make_interval(secs => g * 86400.0 / %(per_day)s)) AS at(t)",
            {"first": first, "last": last, "per_day": per_day})
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE jobs")
    return time.monotonic() - began


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class Hot:
    """The four hot paths, each timed alone."""

    def __init__(self, engine: Engine, client_it: Any, client_hr: Any) -> None:
        self.engine, self.clients = engine, {"it": client_it, "hr": client_hr}

    def submit(self) -> float:
        began = time.perf_counter()
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            job_id = commands.submit(session, "system.ping", {"steps": 1}, enqueue=lambda *_: None).job.id
        elapsed = time.perf_counter() - began
        self.done(job_id)
        return elapsed

    def done(self, job_id: Any) -> None:
        """Finish a job the bench made, so it never joins the relay's due set (a submitted job left
        queued becomes due once the relay's grace has passed, e.g. while the 10 N log is built)."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = :id"),
                         {"id": job_id})

    def claim(self) -> float:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            job_id = commands.submit(session, "system.ping", {}, enqueue=lambda *_: None).job.id
        began = time.perf_counter()
        claimed = commands._claim(self.engine, job_id, 30)  # the claim UPDATE every delivery makes
        elapsed = time.perf_counter() - began
        assert claimed is not None
        self.done(job_id)
        return elapsed

    def relay(self) -> float:
        """A relay tick handing over the 20 due jobs the setup left, rolled back so each tick finds them."""
        with Session(self.engine) as session:
            began = time.perf_counter()
            sent = commands.relay(session, lambda *_: None, stale_seconds=300)
            elapsed = time.perf_counter() - began
            session.rollback()
        assert sent == 20, sent
        return elapsed

    def listing(self, who: str) -> Callable[[], float]:
        def get() -> float:
            began = time.perf_counter()
            answer = self.clients[who].get("/api/v1/jobs?limit=50")
            elapsed = time.perf_counter() - began
            assert answer.status_code == 200 and answer.json, answer.status_code
            return elapsed
        return get

    def measure(self, rounds: int, reps: int) -> dict[str, float]:
        paths: dict[str, Callable[[], float]] = {
            "submit": self.submit, "claim": self.claim, "relay": self.relay,
            "GET /jobs (IT)": self.listing("it"), "GET /jobs (HR)": self.listing("hr")}
        for path in paths.values():  # warm caches and pools
            for _ in range(3):
                path()
        per_round: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, path in paths.items():
                per_round[name].append(median_ms([path() for _ in range(reps)]))
        return {name: statistics.median(values) for name, values in per_round.items()}


def due_jobs(engine: Engine) -> None:
    """20 jobs the broker never got (it was down): what the relay hands over on each tick."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (kind, status, run_after) "
                          "SELECT 'system.ping', 'queued', now() - interval '1 minute' FROM generate_series(1, 20)"))
        # HR's kinds are monthly: a few so its listing has rows to show at smoke scale too.
        conn.execute(text("INSERT INTO jobs (kind, status, created_at, finished_at) SELECT 'payroll.run', "
                          "'succeeded', now() - g * interval '30 days', now() - g * interval '30 days' "
                          "FROM generate_series(1, 3) AS g"))


def clients(engine: Engine, bench_url: str) -> tuple[Any, Any]:
    from tests.factories.accounts import client_for, make_account
    from web import create_app

    app = create_app({"DATABASE_URL": bench_url, "REDIS_URL": load_settings().redis_url})
    it, hr = (make_account(engine, role) for role in ("it_department", "hr_department"))
    return client_for(app, it), client_for(app, hr)


def delete_rate(engine: Engine, hot: Hot, limit_rows: int, batch_rows: int) -> tuple[int, float, list[float]]:
    """Housekeeping's deletes, timed, with claims and submits made meanwhile (their latencies
    returned: what the hot paths see while it runs)."""
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        began = time.monotonic()
        outcome.update(housekeeping.enforce(engine, commands.registry(), batch_rows=batch_rows,
                                            max_batches=max(1, limit_rows // batch_rows)))
        outcome["seconds"] = time.monotonic() - began

    worker = threading.Thread(target=sweep)
    worker.start()
    during: list[float] = []
    while worker.is_alive():
        during += [hot.claim(), hot.submit()]
    worker.join()
    return outcome["deleted"], outcome["seconds"], during


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="N: the smaller log (the larger is 10 N)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=50, help="calls per path per round")
    parser.add_argument("--delete-rows", type=int, default=200_000, help="at most this many deleted when timing")
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--per-day", type=int, default=PER_DAY, help="jobs a day: how far back the log reaches")
    parser.add_argument("--smoke", action="store_true", help="2,000 vs 20,000 rows, 2 rounds of 5: seconds")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.rounds, args.reps, args.delete_rows, args.batch_rows, args.per_day = 2000, 2, 5, 5000, 1000, 100

    url = make_url(database_url())
    bench_db = f"{url.database}_jobs_log_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = url.set(drivername="postgresql", database=bench_db).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        version = row[0] if row else "?"
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    os.environ["DATABASE_URL"] = bench_url  # make_account and the app read the same settings
    os.environ.setdefault("OMBARO_LOG_LEVEL", "WARNING")  # not a line per request
    engine = create_engine(bench_url, pool_size=4)
    try:
        from alembic import command

        cfg = alembic_config(bench_url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        with Session(engine) as session, session.begin():
            seed_permissions(session)
        due_jobs(engine)
        client_it, client_hr = clients(engine, bench_url)
        hot = Hot(engine, client_it, client_hr)
        n = args.rows
        built = {n: grow(plain_url, 1, n, args.per_day)}
        small = hot.measure(args.rounds, args.reps)
        print(f"{n:,} rows measured (built in {built[n]:.1f} s); growing to {10 * n:,}", flush=True)
        built[10 * n] = grow(plain_url, n + 1, 10 * n, args.per_day)
        # Signed in again: building a large log outlasts an access token (the 10M log took over 15 min).
        hot.clients = dict(zip(("it", "hr"), clients(engine, bench_url), strict=True))
        large = hot.measure(args.rounds, args.reps)
        deleted, seconds, during = delete_rate(engine, hot, args.delete_rows, args.batch_rows)
    finally:
        engine.dispose()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')

    print(f"PostgreSQL {version}; jobs at {n:,} and {10 * n:,} rows, {args.per_day:,} a day "
          f"(built in {built[n]:.1f} s and "
          f"+{built[10 * n]:.1f} s); median of {args.rounds} rounds, each the median of {args.reps} calls")
    for name in small:
        print(f"{name:<16} {n:>11,} rows {small[name]:8.3f} ms   {10 * n:>11,} rows {large[name]:8.3f} ms   "
              f"ratio 10N/N {large[name] / small[name]:.2f}")
    print(f"housekeeping     deleted {deleted:,} expired jobs in {seconds:.1f} s: "
          f"{deleted / seconds if seconds else 0:,.0f} rows/s (batches of {args.batch_rows:,})")
    print(f"meanwhile        {len(during)} claims and submits: median {median_ms(during):.3f} ms, "
          f"max {max(during) * 1000:.3f} ms (before: claim {large['claim']:.3f} ms, submit {large['submit']:.3f} ms)")


if __name__ == "__main__":
    main()
