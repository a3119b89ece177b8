"""The engine through PgBouncer in transaction pooling (OMBARO_DATABASE_POOLER=transaction): row-level
security claims are set per transaction, so two tenants sharing one PostgreSQL session never see
each other's rows; psycopg prepares no statements; transaction-scoped advisory locks hold; a worker
runs jobs through it. Session-scoped state does leak through it, which is why the scheduler's
leader lock and the migrations use DATABASE_DIRECT_URL."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from ombaro import commands
from ombaro.config import load_settings
from ombaro.db import database_engine
from tests.deploy.pgbouncer import PgBouncer, installed
from tests.factories import settlements as f
from tests.factories.accounts import client_for, make_account
from tests.helpers import wait_for_status
from tests.services import Process, start_worker
from workers.app import enqueuer

if not installed():
    pytest.skip("pgbouncer is not installed: run `make pgbouncer` (apt-get install pgbouncer)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def bouncer(servers: dict[str, str]) -> Iterator[Callable[..., PgBouncer]]:
    started: list[PgBouncer] = []

    def start(pool_size: int) -> PgBouncer:
        started.append(PgBouncer(servers["database_url"], pool_size=pool_size))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_tenants_sharing_one_server_session_see_only_their_own_rows(
        bouncer: Callable[..., PgBouncer], db_url: str, engine: Engine, app_factory: Callable[..., Any]) -> None:
    one_session = bouncer(pool_size=1)  # every transaction of every client on one PostgreSQL session
    vendors = [make_account(engine, "vendor") for _ in range(2)]
    with engine.begin() as conn:
        customer = f.user(conn)
        own = {v.id: {str(f.booking(conn, v.id, customer, total=Decimal("999.00"), day=dt.date(2025, 6, 2 + n)))
                      for n in range(2 + i)} for i, v in enumerate(vendors)}
    app = app_factory(DATABASE_URL=one_session.url_for(db_url), OMBARO_DATABASE_POOLER="transaction")
    seen: list[tuple[uuid.UUID, set[str], int]] = []
    errors: list[BaseException] = []

    def tenant(n: int) -> None:
        account = vendors[n % 2]
        other = next(iter(own[vendors[(n + 1) % 2].id]))
        client = client_for(app, account)
        try:
            for _ in range(15):
                listed = client.get("/api/v1/bookings?limit=100")
                assert listed.status_code == 200, listed.json
                foreign = client.get(f"/api/v1/bookings/{other}")
                seen.append((account.id, {b["id"] for b in listed.json}, foreign.status_code))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tenant, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(seen) == 6 * 15
    for vendor_id, listed, foreign_status in seen:
        assert listed == own[vendor_id]
        assert foreign_status == 404


def test_prepared_statements_are_off_and_transaction_locks_hold(
        bouncer: Callable[..., PgBouncer], db_url: str, service_env: dict[str, str]) -> None:
    pooled = bouncer(pool_size=2)
    settings = load_settings({**service_env, "DATABASE_URL": pooled.url_for(db_url),
                              "OMBARO_DATABASE_POOLER": "transaction"})
    through = database_engine(settings)
    with through.connect() as conn:
        assert conn.connection.driver_connection.prepare_threshold is None
    errors: list[BaseException] = []

    def queries() -> None:  # the same statement again and again, past psycopg's default threshold of 5
        try:
            for n in range(40):
                with Session(through) as session, session.begin():
                    assert session.execute(text("SELECT count(*) + :n FROM jobs"), {"n": n}).scalar_one() >= n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=queries) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    key = 7_201_120_999
    with through.connect() as holder, through.connect() as contender:
        with holder.begin():
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            with contender.begin():
                assert contender.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar_one() is False
        with contender.begin():  # released at the holder's commit
            assert contender.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar_one() is True


def test_session_state_leaks_through_transaction_pooling(bouncer: Callable[..., PgBouncer], db_url: str) -> None:
    """Why only transaction-local settings are safe behind it, and why the scheduler's session
    advisory lock goes around it: two clients on one server session share both."""
    one_session = bouncer(pool_size=1)
    url = plain(one_session.url_for(db_url))
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as first, \
            psycopg.connect(url, autocommit=True, prepare_threshold=None) as second:
        first.execute("SELECT set_config('request.jwt.claims', '{\"sub\": \"tenant-a\"}', false)")
        leaked = second.execute("SELECT current_setting('request.jwt.claims', true)").fetchone()
        assert leaked == ('{"sub": "tenant-a"}',)
        assert first.execute("SELECT pg_try_advisory_lock(7201120998)").fetchone() == (True,)
        # A second "leader" is granted the lock too: it is the same PostgreSQL session.
        assert second.execute("SELECT pg_try_advisory_lock(7201120998)").fetchone() == (True,)
        first.execute("SELECT pg_advisory_unlock_all(), set_config('request.jwt.claims', '', false)")
    direct = plain(db_url)
    with psycopg.connect(direct, autocommit=True) as first, psycopg.connect(direct, autocommit=True) as second:
        assert first.execute("SELECT pg_try_advisory_lock(7201120998)").fetchone() == (True,)
        assert second.execute("SELECT pg_try_advisory_lock(7201120998)").fetchone() == (False,)


def test_a_worker_runs_jobs_through_pgbouncer(
        bouncer: Callable[..., PgBouncer], db_url: str, redis_url: str, engine: Engine,
        spawn: Callable[..., Process], clean_jobs: None, tmp_path: Path) -> None:
    # Two server connections per job running at once: the job's transaction, and the progress and
    # lease writes beside it (docs/deploying.md); fewer and the pool deadlocks. Concurrency 2 here.
    pooled = bouncer(pool_size=4)
    start_worker(spawn, "pooled", env={"DATABASE_URL": pooled.url_for(db_url), "DATABASE_DIRECT_URL": db_url,
                                       "OMBARO_DATABASE_POOLER": "transaction"})
    send = enqueuer(redis_url)
    with Session(engine) as session, session.begin():
        refresh = commands.submit(session, "reports.refresh", {}, enqueue=send).job.id
    with Session(engine) as session, session.begin():
        pings = [commands.submit(session, "system.ping", {"steps": 3, "echo": n}, enqueue=send).job.id
                 for n in range(10)]
    rows = [wait_for_status(engine, job_id, timeout=60) for job_id in (refresh, *pings)]
    assert [row["status"] for row in rows] == ["succeeded"] * 11, [row["error"] for row in rows]
    check = create_engine(pooled.url_for(db_url), poolclass=NullPool, connect_args={"prepare_threshold": None})
    with check.connect() as conn:  # the refresh took its advisory lock and wrote through the pooler
        assert conn.execute(text("SELECT count(*) FROM view_refreshes WHERE job_id = :id"),
                            {"id": refresh}).scalar_one() == 2
    check.dispose()
