"""Engines and sessions. The domain receives a Session; it never commits or closes it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg.rows import RowFactory
from sqlalchemy import Connection, Engine, Table, TextualSelect, bindparam, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import FromClause

from ombaro.config import DatabaseSettings, Settings, load_database_settings

T = TypeVar("T")


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


@lru_cache(maxsize=8)
def engine_for(url: str, *, prepared_statements: bool = True) -> Engine:
    # Behind PgBouncer's transaction pooling a statement psycopg prepared on one server connection
    # is unknown on the next one (PgBouncer < 1.21): prepare_threshold=None prepares nothing.
    connect_args = {} if prepared_statements else {"prepare_threshold": None}
    engine = create_engine(url, pool_size=5, max_overflow=10, future=True, connect_args=connect_args)
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Workers live for days and the database may restart under them: a connection that sat in the
    pool is pinged before use (what `pool_pre_ping` does), but not one returned less than
    `idle_seconds` ago. pool_pre_ping's round trip on every checkout was 10-25 % of a command
    submission (docs/benchmarks.md); a connection that was just used is alive, and if the server
    went away in that instant, the disconnect error invalidates the whole pool as it always did."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["ombaro.returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "broken", False) or getattr(dbapi_connection, "closed", False):
            raise exc.DisconnectionError("the pooled connection is closed")
        returned = record.info.get("ombaro.returned")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new (just connected), or used a moment ago
        dialect = engine.dialect  # what pool_pre_ping runs, through the dialect's public hooks
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.DisconnectionError("the pooled connection did not answer a ping") from error
            raise


def database_engine(settings: Settings | DatabaseSettings) -> Engine:
    """The engine every request and job uses: DATABASE_URL, PgBouncer or PostgreSQL itself."""
    return engine_for(settings.database_url, prepared_statements=settings.database_pooler != "transaction")


def direct_engine(settings: Settings | DatabaseSettings) -> Engine:
    """PostgreSQL itself (DATABASE_DIRECT_URL), never a transaction pooler: for a session-level
    advisory lock held for hours, as the scheduler's leader lock is."""
    return engine_for(settings.direct_database_url)


def get_engine() -> Engine:
    """DATABASE_URL's engine; reads only the database settings (migrating needs no Redis)."""
    return database_engine(load_database_settings())


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with session_factory(engine)() as session, session.begin():
        yield session


def fixed_insert(table: FromClause, written: Sequence[str], conflict: str = "", *,
                 computed: Mapping[str, str] | None = None) -> TextualSelect:
    """`INSERT INTO table (written...) VALUES (:written...) <conflict> RETURNING <every column>` as one
    fixed statement, its binds named and typed after the written columns.

    SQLAlchemy 2.0's PostgreSQL insert() has no cache key (`inherit_cache = False`): a statement built
    with it, its ON CONFLICT above all, is compiled again on every execution (about 1 ms of CPU; issue
    16). This text is compiled once, and psycopg prepares it on the server after a few uses.
    `conflict` is the ON CONFLICT clause as written (with DO UPDATE's SET and WHERE); `computed`
    names columns set by an SQL expression instead of a bind (`{"enqueued_at": "now()"}`). The result
    is typed by the table's columns: a Core row, or an entity through
    `select(Entity).from_statement(fixed_insert(...))`."""
    assert isinstance(table, Table)  # a mapped class's __table__ is typed as any FromClause
    columns = table.c
    extra = dict(computed or {})
    names = [*written, *extra]
    values = [*(f":{name}" for name in written), *extra.values()]
    statement = (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(values)}) {conflict} "
                 f"RETURNING {', '.join(column.name for column in columns)}")
    return (text(statement).bindparams(*(bindparam(name, type_=columns[name].type) for name in written))
            .columns(*columns))


class DriverPipeline:
    """The session's psycopg connection in pipeline mode, as `driver_pipeline` hands it out."""

    def __init__(self, driver: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
        self.driver = driver
        self._pipeline = pipeline
        self._cursors: list[psycopg.Cursor[Any]] = []

    def cursor(self, row_factory: RowFactory[Any] | None = None) -> psycopg.Cursor[Any]:
        """A cursor on the pipeline's connection, closed when the pipeline ends."""
        cursor = self.driver.cursor() if row_factory is None else self.driver.cursor(row_factory=row_factory)
        self._cursors.append(cursor)
        return cursor

    def sync(self) -> None:
        """Wait for every statement sent so far: their results (a rowcount, say) are then read."""
        self._pipeline.sync()

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()


@contextmanager
def driver_pipeline(session: Session, statement: str | None = None) -> Iterator[DriverPipeline]:
    """Statements sent together in one psycopg pipeline on the session's connection, inside its
    transaction (its role and claims): one round trip for all, where each through the session is one
    (issue 16). The cursors handed out are closed at the end; a psycopg.Error is raised as the
    session would have raised it (IntegrityError, DataError, ...: SQLAlchemy's DBAPIError, naming
    `statement`), so callers and the API's error mapping treat it as before."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection), "the engine runs on psycopg 3"
    pipe: DriverPipeline | None = None
    try:
        with driver.pipeline() as pipeline:
            pipe = DriverPipeline(driver, pipeline)
            yield pipe
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error
    finally:
        if pipe is not None:
            pipe.close()


API_ROLE = "ombaro_api"
WORKER_ROLE = "ombaro_worker"


def act_as(session: Session | Connection, db_role: str, claims: dict[str, Any] | None) -> None:
    """Run the rest of this transaction as `db_role` with `claims` (docs/access.md): row-level
    security then decides which rows exist. Both settings are transaction-local, so a pooled
    connection carries nothing into its next transaction."""
    if db_role not in (API_ROLE, WORKER_ROLE):
        raise ValueError(f"not a request role: {db_role}")
    # One round trip: `set_config('role', ..., true)` is SET LOCAL ROLE.
    session.execute(text("SELECT set_config('role', :role, true), set_config('request.jwt.claims', :claims, true)"),
                    {"role": db_role, "claims": json.dumps(claims, default=str) if claims else ""})


def committed_as(engine: Engine, db_role: str, claims: dict[str, Any] | None) -> Callable[[Callable[[Session], T]], T]:
    """A runner of work in a transaction of its own, as `db_role`, committed when the work returns.
    For the few writes that must be durable before a side effect outside the database happens
    (a payout's send is recorded before the provider is called), while the caller's own
    transaction stays open."""

    def run(work: Callable[[Session], T]) -> T:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            act_as(session, db_role, claims)
            return work(session)

    return run
