"""Test fixtures: real PostgreSQL and Redis, real Celery workers where delivery is the point.

TEST_DATABASE_URL / TEST_REDIS_URL point at servers to use; unset, the embedded services under
./var are started (`ombaro services up`). Each test session creates its own databases named
`<base>_t_<random>` on that server and drops them at the end; Redis is flushed (database index
from TEST_REDIS_URL, default 1 on the embedded server)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from ombaro.config import PROJECT_ROOT, normalise_database_url
from tests.services import Database, Process, migrate, purge_queues, start_worker

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def servers() -> dict[str, str]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not database_url or not redis_url:
        from devtools import embedded_services as services

        urls = services.up(Path(os.environ.get("OMBARO_VAR_DIR") or PROJECT_ROOT / "var"))
        database_url = database_url or urls.database_url
        # A database index of its own per test session: workers of two sessions running at once on
        # one machine must not consume each other's messages.
        redis_url = redis_url or urls.redis_url.rsplit("/", 1)[0] + f"/{1 + secrets.randbelow(15)}"
    database_url = normalise_database_url(database_url)
    admin_url = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    if os.environ.get("OMBARO_TEST_CLOCK"):
        _check_moved_clock(dt.datetime.fromisoformat(os.environ["OMBARO_TEST_CLOCK"]), admin_url)
    return {"database_url": database_url, "redis_url": redis_url, "admin_url": admin_url}


def _check_moved_clock(target: dt.datetime, admin_url: str) -> None:
    """Under `make test-clock` (tests/moved_clock.py): this process and the database server both read
    the moved time, or the run proves nothing."""
    with psycopg.connect(_plain(admin_url)) as conn:
        database_now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    process_now = dt.datetime.now(dt.UTC)
    assert abs(process_now - target) < dt.timedelta(minutes=30), f"process clock {process_now} not moved to {target}"
    assert abs(database_now - process_now) < dt.timedelta(seconds=60), \
        f"database clock {database_now} differs from the process clock {process_now}"


@pytest.fixture(scope="session")
def make_database(servers: dict[str, str]) -> Iterator[Callable[[], str]]:
    """Factory: a new empty database on the test server, dropped when the session ends."""
    created: list[str] = []
    base = make_url(servers["database_url"]).database or "ombaro"

    def make() -> str:
        name = f"{base}_t_{secrets.token_hex(4)}"
        with psycopg.connect(_plain(servers["admin_url"]), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(servers["database_url"]).set(database=name).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(_plain(servers["admin_url"]), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def own_database(make_database: Callable[[], str]) -> Iterator[Callable[[], Database]]:
    """Factory: a database of its own, migrated to head, with an engine: for tests whose jobs reach
    every row of a table (a settlement run covers every vendor of the period)."""
    made: list[Database] = []

    def make() -> Database:
        url = make_database()
        migrate(url)
        made.append(Database(url, create_engine(url, pool_pre_ping=True)))
        return made[-1]

    yield make
    for database in made:
        database.engine.dispose()


@pytest.fixture(scope="session")
def db_url(make_database: Callable[[], str]) -> str:
    """The session's database, migrated to head."""
    url = make_database()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def redis_url(servers: dict[str, str]) -> str:
    redis.Redis.from_url(servers["redis_url"]).flushdb()
    return servers["redis_url"]


@pytest.fixture(scope="session")
def broker_url(redis_url: str) -> Iterator[str]:
    """The broker the engine's processes use: the session's Redis database, or with
    TEST_BROKER_URL=amqp://... RabbitMQ, on a virtual host of this session's own (made with
    rabbitmqctl, deleted at the end), so its fixed queue names meet no other user's."""
    wanted = os.environ.get("TEST_BROKER_URL", "")
    if not wanted.startswith("amqp"):
        yield redis_url
        return
    from tests.deploy.rabbitmq import VirtualHost

    vhost = VirtualHost(wanted)
    try:
        yield vhost.url
    finally:
        vhost.delete()


@pytest.fixture(scope="session")
def service_env(db_url: str, redis_url: str, broker_url: str) -> dict[str, str]:
    """Environment for code under test, in this process and in subprocesses."""
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "OMBARO_LOG_LEVEL": "INFO",
           **({"BROKER_URL": broker_url} if broker_url != redis_url else {})}
    os.environ.update(env)
    return {**os.environ, **env}


@pytest.fixture(scope="session")
def engine(db_url: str, service_env: dict[str, str]) -> Iterator[Engine]:
    eng = create_engine(db_url, pool_pre_ping=True)
    yield eng
    eng.dispose()


@pytest.fixture
def clean_jobs(engine: Engine, service_env: dict[str, str]) -> None:
    """Each command-flow test starts from an empty command log, untouched schedules and empty
    queues: the messages of earlier tests' jobs (left by tests that run no worker) go with their
    rows, or the next worker first works through that backlog while the test's own jobs wait (a
    scheduler test then saw its slot skipped as an overlap: the previous firing still queued)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE view_refreshes, jobs"))
        conn.execute(text("DELETE FROM schedules WHERE name <> 'reports.refresh-dashboards'"))
        conn.execute(text("UPDATE schedules SET enabled = true, last_fired_for = NULL"))
    purge_queues(service_env)


@pytest.fixture
def app_factory(service_env: dict[str, str], db_url: str, redis_url: str) -> Callable[..., Any]:
    """create_app against the test services; keyword arguments override settings (env names)."""
    from web import create_app

    def make(**overrides: str) -> Any:
        return create_app({"DATABASE_URL": db_url, "REDIS_URL": redis_url, **overrides})

    return make


@pytest.fixture
def app(app_factory: Callable[..., Any]) -> Any:
    return app_factory()


@pytest.fixture(scope="session")
def operator(engine: Engine) -> Any:
    """An IT-department account: may refresh reports and read every job."""
    from tests.factories.accounts import make_account

    return make_account(engine, "it_department")


@pytest.fixture
def client(app: Any, operator: Any) -> Any:
    """A test client sending the operator's access token with every request (`Account.token` mints
    a fresh one as the last ages: a whole run outlives OMBARO_ACCESS_TOKEN_SECONDS)."""
    from tests.factories.accounts import client_for

    return client_for(app, operator)


@pytest.fixture
def anon_client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def spawn(tmp_path: Path, service_env: dict[str, str]) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        process = Process(list(args), {**service_env, **(env or {})}, tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def worker(spawn: Callable[..., Process], clean_jobs: None) -> Process:
    """A real Celery worker process on all queues, against the test database and Redis."""
    return start_worker(spawn)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that touch a database carry the `db` marker (CI runs them again on PostgreSQL 15)."""
    for item in items:
        if {"db_url", "make_database", "engine"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
