"""The cost of row-level security on a hot read: a customer and a vendor listing their latest 50
bookings out of a million, as the request role with claims set (policies applied), against the same
query run by the owner, to whom no policy applies. Prints medians and the ratio of each.

Three ways of running each listing, alternated over random customers / vendors:
  owner  the owner (superuser or BYPASSRLS: no policy applies) with the explicit WHERE filter;
  rls    ombaro_api with the claims, and the same SQL (explicit WHERE, as the API writes it);
  bare   ombaro_api with the claims and no WHERE at all: the policies alone pick the rows.
The ratio asked for is rls / owner; `bare` shows why the API still writes the filter.

With --sessions it measures instead what ending sessions at once costs every request: resolving a
bearer token (signature check, then the account's role and status) as before, against the same with
the check that the token's login (refresh-token family) is not revoked, in the same query
(ombaro.identity.accounts.principal_of), over --users accounts with three logins of four rotated
refresh tokens each. Prints both medians, the difference (target: at most 0.2 ms) and the ratio.

Runs against a scratch database (`<db>_access_bench`, migrated here, dropped after unless --keep) on
the configured PostgreSQL server (DATABASE_URL or the embedded one). The data is made by set-based
INSERT ... SELECT generate_series, without per-row foreign-key checks or triggers, bookings' secondary
indexes built after the rows (1,000,000 bookings in about a minute). --upgrade-to 0025 keeps a scratch
database at the policies before migration 0026, to measure before and after on the same data.
Usage: python bench/access.py [--iterations 1000] [--bare-iterations 10] [--bookings 1000000] [--keep | --reuse]
                              [--upgrade-to REVISION]
       python bench/access.py --sessions [--iterations 2000] [--users 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from ombaro.config import load_settings, normalise_database_url  # noqa: E402

VENDORS = 200
CUSTOMERS = 100_000
API = "ombaro_api"

# Ids are md5 of a label, so every statement can compute any user's id from its number without a
# lookup table: customer n is md5('customer:n')::uuid.
BUILD = [
    ("users", """
        INSERT INTO auth.users (id, email, encrypted_password, created_at)
        SELECT md5(kind || ':' || n)::uuid, kind || n || '@bench.example', '!', now() - interval '400 days'
        FROM (SELECT 'vendor' AS kind, n FROM generate_series(1, %(vendors)s) AS n
              UNION ALL SELECT 'customer', n FROM generate_series(1, %(customers)s) AS n) AS who
    """),
    ("vendors", """
        INSERT INTO vendors (id, business_name, business_type, business_address, contact_person, contact_mobile,
                             contact_email, verification_status, status)
        SELECT md5('vendor:' || n)::uuid, 'Spa ' || n, 'spa',
               jsonb_build_object('city', (ARRAY['Pune', 'Mumbai', 'Bengaluru', 'Delhi'])[1 + n %% 4],
                                  'latitude', 18.5 + n / 1000.0, 'longitude', 73.8 + n / 1000.0),
               'Owner ' || n, '+9198' || lpad(n::text, 8, '0'), 'vendor' || n || '@bench.example', 'verified', 'active'
        FROM generate_series(1, %(vendors)s) AS n
    """),
    # A year of bookings. Vendors are skewed (a few big spas take many bookings: random()^2), customers
    # uniform, about ten bookings each; dates spread over the year before today, times 09:00-20:30.
    ("bookings", """
        INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, booking_date,
                              booking_time, status, payment_status, subtotal_amount, tax_amount, total_amount,
                              created_at, updated_at)
        SELECT 'BNC-' || g,
               md5('customer:' || (1 + floor(random() * %(customers)s))::int)::uuid,
               md5('vendor:' || (1 + floor(power(random(), 2) * %(vendors)s))::int)::uuid,
               'spa_visit', '{"city": "Pune"}'::jsonb, day, time '09:00' + (floor(random() * 24) * interval '30 min'),
               (ARRAY['completed', 'completed', 'completed', 'cancelled', 'confirmed'])[1 + floor(random() * 5)::int],
               'paid', price, round(price * 0.18, 2), round(price * 1.18, 2), day, day
        FROM (SELECT g, current_date - floor(random() * 365)::int AS day,
                     (1500 + floor(random() * 40) * 100)::numeric AS price
              FROM generate_series(1, %(bookings)s) AS g) AS b
    """),
]

LISTINGS = {  # listing -> (the column that is the caller, the claims' role)
    "customer": ("customer_id", "customer"),
    "vendor": ("vendor_id", "vendor"),
}
COLUMNS = "id, booking_number, booking_date, booking_time, status, total_amount"


def listing(column: str | None) -> str:
    where = f"WHERE {column} = %(who)s " if column else ""
    return f"SELECT {COLUMNS} FROM bookings {where}ORDER BY booking_date DESC LIMIT 50"


def database_url() -> str:
    return normalise_database_url(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL") \
        else load_settings().database_url


def build(url: str, bookings: int) -> None:
    params = {"vendors": VENDORS, "customers": CUSTOMERS, "bookings": bookings}
    with psycopg.connect(url) as conn:
        conn.execute("SELECT setseed(0.42)")  # the same data set every run
        # The rows are consistent by construction: no per-row foreign-key checks and no triggers (the
        # booking-number counters are left as they are; nothing here numbers a booking). A quarter
        # of the bookings' time at 1M. Needs a superuser, as the baseline does; ends with the build.
        conn.execute("SET LOCAL session_replication_role = replica")
        # Bookings' secondary indexes are built after the rows (one sort each) rather than kept up
        # row by row through a million random uuid inserts; the primary key and unique key stay.
        indexes = [row[0] for row in conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i "
            "WHERE i.indrelid = 'bookings'::regclass AND NOT i.indisprimary AND NOT i.indisunique")]
        for (drop,) in conn.execute("SELECT format('DROP INDEX %s', indexrelid::regclass) FROM pg_index "
                                    "WHERE indrelid = 'bookings'::regclass AND NOT indisprimary AND NOT indisunique"
                                    ).fetchall():
            conn.execute(drop)
        for name, sql in BUILD:
            began = time.monotonic()
            count = conn.execute(sql, params).rowcount
            print(f"built {name}: {count:,} rows in {time.monotonic() - began:.1f} s", flush=True)
        began = time.monotonic()
        for definition in indexes:
            conn.execute(definition)
        print(f"built {len(indexes)} indexes of bookings in {time.monotonic() - began:.1f} s", flush=True)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def run(conn: psycopg.Connection[Any], sql: str, who: str, as_request: dict[str, str] | None) -> float:
    """Seconds the listing took, in a transaction of its own (as a request's would be)."""
    with conn.transaction():
        if as_request is not None:
            conn.execute(f"SET LOCAL ROLE {API}")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(as_request),))
        began = time.perf_counter()
        rows = conn.execute(sql, {"who": who}).fetchall()
        elapsed = time.perf_counter() - began
    if not rows:
        raise RuntimeError(f"no bookings listed for {who}: the benchmark would time nothing")
    return elapsed


def explain(conn: psycopg.Connection[Any], sql: str, who: str, as_request: dict[str, str] | None) -> str:
    with conn.transaction():
        if as_request is not None:
            conn.execute(f"SET LOCAL ROLE {API}")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(as_request),))
        plan = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", {"who": who}).fetchall()
    return "\n".join("    " + line for (line,) in plan)


def measure(url: str, iterations: int, bare_iterations: int) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    results: dict[str, dict[str, float]] = {}
    # One connection per side, as in production where a request pool always switches to ombaro_api:
    # a prepared statement whose role changes between executions is planned again every time.
    # autocommit: each conn.transaction() is then a real BEGIN/COMMIT, so SET LOCAL ends with it.
    with psycopg.connect(url, autocommit=True) as owner, psycopg.connect(url, autocommit=True) as request:
        is_bypassing = owner.execute(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (is_bypassing and is_bypassing[0]):
            raise SystemExit("the baseline needs an owner that bypasses RLS (superuser or BYPASSRLS)")
        for name, (column, role) in LISTINGS.items():
            ids = [row[0] for row in owner.execute(f"SELECT DISTINCT {column}::text FROM bookings")]
            filtered, unfiltered = listing(column), listing(None)
            sample = ids[0]
            print(f"\n{name}: plans for one {name}")
            for label, conn, sql, as_request in (("owner", owner, filtered, None),
                                                 ("rls", request, filtered, {"sub": sample, "role": role}),
                                                 ("bare", request, unfiltered, {"sub": sample, "role": role})):
                print(f"  {label}:\n{explain(conn, sql, sample, as_request)}")
            for _ in range(20):  # warm caches and psycopg's prepared statements
                who = rng.choice(ids)
                run(owner, filtered, who, None)
                run(request, filtered, who, {"sub": who, "role": role})
            timings: dict[str, list[float]] = {"owner": [], "rls": [], "bare": []}
            for i in range(iterations):
                who = rng.choice(ids)
                claims = {"sub": who, "role": role}
                # `bare` can take seconds a listing (it reads the whole table): fewer of those.
                order = [("owner", owner, filtered, None), ("rls", request, filtered, claims),
                         *([("bare", request, unfiltered, claims)] if i < bare_iterations else [])]
                for label, conn, sql, as_request in order if i % 2 == 0 else reversed(order):
                    timings[label].append(run(conn, sql, who, as_request))
            results[name] = {label: statistics.median(values) * 1000 for label, values in timings.items() if values}
    return results


SESSIONS_BUILD = [
    ("users", """
        INSERT INTO auth.users (id, email, encrypted_password)
        SELECT md5('user:' || n)::uuid, 'user' || n || '@bench.example', '!' FROM generate_series(1, %(users)s) AS n
    """),
    ("user_profiles", """
        INSERT INTO user_profiles (id, name, mobile, role)
        SELECT md5('user:' || n)::uuid, 'User ' || n, '+9197' || lpad(n::text, 8, '0'), 'customer'
        FROM generate_series(1, %(users)s) AS n
    """),
    # Three logins per user, each rotated three times (four rows, three used); a third of the
    # logins signed out (revoked), as a live table would hold.
    ("refresh_tokens", """
        INSERT INTO auth.refresh_tokens (user_id, family_id, token_hash, issued_at, expires_at, used_at, revoked_at)
        SELECT md5('user:' || n)::uuid, md5('family:' || n || ':' || f)::uuid, md5(n || ':' || f || ':' || r),
               now() - interval '1 day', now() + interval '29 days',
               CASE WHEN r < 4 THEN now() END, CASE WHEN f = 3 THEN now() END
        FROM generate_series(1, %(users)s) AS n, generate_series(1, 3) AS f, generate_series(1, 4) AS r
    """),
]

# The lookup every request made before logins could be ended: the account's role and status.
BEFORE = "SELECT p.role, p.status FROM user_profiles AS p WHERE p.id = :uid"


def measure_sessions(url: str, iterations: int, users: int) -> dict[str, float]:
    """Median ms to resolve one bearer token: signature + lookup, before and with the login check."""
    from sqlalchemy import create_engine, text

    from ombaro.db import session_factory
    from ombaro.identity import accounts, tokens

    # Redis is not involved; the signing key is the bench's own.
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0", "OMBARO_JWT_SECRET": "bench-" + "k" * 40,
                              **os.environ, "DATABASE_URL": url})
    engine = create_engine(normalise_database_url(url), pool_size=2)
    sessions = session_factory(engine)
    rng = random.Random(11)
    picks = [(rng.randint(1, users), rng.randint(1, 2)) for _ in range(iterations + 50)]
    with engine.connect() as conn:
        ids = {(n, f): conn.execute(text("SELECT md5('user:' || :n)::uuid, md5('family:' || :n || ':' || :f)::uuid"),
                               {"n": str(n), "f": str(f)}).one() for n, f in set(picks)}
    bearer = {key: tokens.issue_access_token(settings, user, "customer", session_id=family)
              for key, (user, family) in ids.items()}

    def before(token: str) -> None:
        claims = tokens.verify_access_token(settings, token)
        with sessions() as session:
            row = session.execute(text(BEFORE), {"uid": claims.user_id}).one()
        assert row.status == "active"

    def with_login_check(token: str) -> None:
        claims = tokens.verify_access_token(settings, token)
        with sessions() as session:
            principal = accounts.principal_of(session, claims.user_id, claims.session_id)
        assert principal is not None and principal.session_live

    timings: dict[str, list[float]] = {"before": [], "sessions": []}
    for i, (n, f) in enumerate(picks):
        token = bearer[(n, f)]
        order = [("before", before), ("sessions", with_login_check)]
        for label, resolve in order if i % 2 == 0 else reversed(order):
            began = time.perf_counter()
            resolve(token)
            if i >= 50:  # the first 50: warm the pool and the plans
                timings[label].append(time.perf_counter() - began)
    engine.dispose()
    return {label: statistics.median(values) * 1000 for label, values in timings.items()}


def sessions_main(url: Any, admin: str, bench_url: str, plain_url: str, args: argparse.Namespace) -> None:
    from alembic import command

    with psycopg.connect(admin, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}_access_bench" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{url.database}_access_bench"')
    try:
        cfg = alembic_config(bench_url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        with psycopg.connect(plain_url) as conn:
            for name, sql in SESSIONS_BUILD:
                began = time.monotonic()
                count = conn.execute(sql, {"users": args.users}).rowcount
                print(f"built {name}: {count:,} rows in {time.monotonic() - began:.1f} s", flush=True)
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
        medians = measure_sessions(bench_url, args.iterations, args.users)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.database}_access_bench" WITH (FORCE)')
    print(f"\nPostgreSQL {version[0] if version else '?'}, {args.users:,} users, {args.users * 12:,} refresh tokens; "
          f"median of {args.iterations} bearer tokens resolved each way (signature + lookup, own session)")
    print(f"before {medians['before']:.3f} ms   with the login check {medians['sessions']:.3f} ms   "
          f"cost {medians['sessions'] - medians['before']:+.3f} ms a request (target <= 0.2)   "
          f"ratio {medians['sessions'] / medians['before']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--bare-iterations", type=int, default=10)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a scratch database kept by --keep")
    parser.add_argument("--upgrade-to", default="heads", metavar="REVISION",
                        help="migrate the scratch database to this revision only (e.g. 0025 for the "
                             "policies before 0026), to measure before and after on the same data")
    parser.add_argument("--sessions", action="store_true",
                        help="measure the per-request check that the token's login is not revoked instead")
    parser.add_argument("--users", type=int, default=20_000, help="accounts for --sessions")
    args = parser.parse_args()

    url = make_url(database_url())
    bench_db = f"{url.database}_access_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = url.set(drivername="postgresql", database=bench_db).render_as_string(hide_password=False)
    if args.sessions:
        sessions_main(url, admin, bench_url, plain_url, args)
        return
    with psycopg.connect(admin, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        if not args.reuse:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{bench_db}"')
    try:
        from alembic import command

        cfg = alembic_config(bench_url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, args.upgrade_to)  # with --reuse: picks up index changes of the migration
        if not args.reuse:
            build(plain_url, args.bookings)
        results = measure(plain_url, args.iterations, args.bare_iterations)
    finally:
        if not (args.keep or args.reuse):
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')

    print(f"\nPostgreSQL {version[0] if version else '?'}, {args.bookings:,} bookings, {VENDORS} vendors, "
          f"{CUSTOMERS:,} customers; median of {args.iterations} listings (50 latest) each, "
          f"{args.bare_iterations} without WHERE")
    for name, medians in results.items():
        bare = (f"   (policies alone, no WHERE: {medians['bare']:.3f} ms, {medians['bare'] / medians['owner']:.1f}x)"
                if "bare" in medians else "")
        print(f"{name:<9} owner {medians['owner']:.3f} ms   rls {medians['rls']:.3f} ms   "
              f"ratio rls/owner {medians['rls'] / medians['owner']:.2f}{bare}")


if __name__ == "__main__":
    main()
