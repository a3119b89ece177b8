"""What the app holds for the request handlers: settings, engine, sessions, Redis and the enqueuer."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psycopg
import redis
from flask import Request, current_app, g, request
from flask.ctx import _AppCtxGlobals
from psycopg import generators
from psycopg.adapt import Transformer
from sqlalchemy import ClauseElement, Connection, Dialect, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from ombaro.commands import Enqueue
from ombaro.config import Settings
from ombaro.db import API_ROLE, act_as

if TYPE_CHECKING:
    from web.auth import CurrentUser

T = TypeVar("T")


@dataclass(frozen=True)
class Ombaro:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # service sessions (the owner): authentication, audit
    enqueue: Enqueue
    redis: redis.Redis

    @staticmethod
    def get() -> Ombaro:
        extension: Ombaro = current_app.extensions["ombaro"]
        return extension

    @staticmethod
    def close_session(_exc: BaseException | None = None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def this_request() -> Request:
    """The request itself rather than Flask's `request` proxy, for code that reads it many times:
    each read through the proxy looks the request context up again (about 1.5 us; the hooks every
    request runs read it some fifty times, issue 16, session 9)."""
    current: Request = cast(Any, request)._get_current_object()
    return current


def request_globals() -> _AppCtxGlobals:
    """Flask's `g` itself rather than its proxy (as this_request)."""
    current: _AppCtxGlobals = cast(Any, g)._get_current_object()
    return current


def db_session() -> Session:
    """The request's session. Every transaction it opens runs as the request role with the
    caller's claims (docs/access.md), so row-level security, not the handler's query, decides
    which rows exist: a forgotten WHERE cannot leak another tenant's data."""
    if "db_session" not in g:
        from web.auth import current_user

        session = Ombaro.get().sessions()
        claims = current_user().claims()

        @event.listens_for(session, "after_begin")
        def as_caller(_session: Session, _tx: SessionTransaction, connection: Connection) -> None:
            act_as(connection, API_ROLE, claims)

        g.db_session = session
    request_session: Session = g.db_session
    return request_session


# act_as's statement (ombaro.db), as the driver takes it; the caller's statement follows it.
_ACT_AS = "SELECT set_config('role', %(_role)s, true), set_config('request.jwt.claims', %(_claims)s, true)"
# Names of caller_rows' statements prepared on a pooled connection (its `info`, which lives and is
# cleared with the driver's connection).
_PREPARED = "ombaro.prepared_rows"
_READER = "ombaro.rows_reader"  # and what sends them and reads their rows (_Reader)
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")
_SUCCEEDED = (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK)  # a statement's result, not its error
# _ACT_AS prepared too (issue 16, session 8: PostgreSQL parses and plans it on every read otherwise);
# one text, so one name for the process.
_ACT_AS_NAME = "ombaro_act_as"
_PREPARE_ACT_AS = (f"PREPARE {_ACT_AS_NAME}(text, text) AS "
                   "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)")
_EXECUTE_ACT_AS = f"EXECUTE {_ACT_AS_NAME}(%(_role)s, %(_claims)s)"


@dataclass(frozen=True)
class _Compiled:
    """A caller_rows statement as sent: `simple` carries the statement's text (planned by the server
    on every read), `execute` runs it as `name`, prepared on the connection by `prepare`."""

    statement: ClauseElement
    simple: str
    name: str
    prepare: str
    execute: str


_COMPILED: dict[int, _Compiled] = {}  # id(statement) -> the statement as sent
_NAMES = itertools.count(1)


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    sql = str(statement.compile(dialect=dialect))
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:  # %(name)s -> $n; %% -> % (PREPARE is sent unbound)
        if match.group(1) is None:
            return "%"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    name = f"ombaro_rows_{next(_NAMES)}"  # never reused in the process: a connection may hold older ones
    prepare = f"PREPARE {name} AS {_PLACEHOLDER.sub(positional, sql)}"
    arguments = f"({', '.join(f'%({n})s' for n in names)})" if names else ""
    return _Compiled(statement, simple=f"BEGIN; {_ACT_AS}; {sql}; COMMIT", name=name, prepare=prepare,
                     execute=f"BEGIN; {_EXECUTE_ACT_AS}; EXECUTE {name}{arguments}; COMMIT")


def _plan_changed(error: Exception) -> bool:
    """The connection's prepared statement no longer fits its table (a migration changed the
    columns under a running process)."""
    return isinstance(error, psycopg.errors.FeatureNotSupported) and "cached plan" in str(error)


def _act_as_values() -> dict[str, str]:
    """_ACT_AS's values for the request: the request role and the caller's claims."""
    from web.auth import current_user

    return {"_role": API_ROLE, "_claims": _claims_text(current_user())}


@functools.lru_cache(maxsize=4096)
def _claims_text(user: CurrentUser) -> str:
    """The caller's claims as act_as sends them (ombaro.db.act_as): a function of the frozen user
    alone, kept for the callers a worker serves again and again (issue 16, session 8: the
    json.dumps was 5-13 us of every listing and submit)."""
    claims = user.claims()
    return json.dumps(claims, default=str) if claims else ""


def caller_rows(statement: ClauseElement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of `statement` as the request role with the caller's claims, as db_session's
    transactions run (row-level security decides which rows exist), for the hot listings
    (docs/benchmarks.md, issue 16): BEGIN, the role and claims, the statement and COMMIT go to
    PostgreSQL as one simple query (one round trip, the values bound and quoted by psycopg's
    client-side cursor) on a pooled connection, with no Session and no SQLAlchemy result around
    it. `statement` must be one long-lived object (it is compiled here once) whose parameters are
    all named in `params`.

    The statement is prepared once on each pooled connection (SQL PREPARE, sent alone the first
    time) and the query names it (EXECUTE): PostgreSQL then plans it once a connection, not on
    every read, where planning it with the row-level security policies cost more than running it
    (issue 16, session 6); so is the role-and-claims statement (session 8). The policies still
    decide at each EXECUTE: the server re-plans a prepared statement for another role, and the
    caller's claims are read when it runs. Behind a
    transaction pooler (OMBARO_DATABASE_POOLER=transaction) nothing is prepared: the statement's
    text goes in the query as before. A connection that lost its prepared statements (psycopg's
    DEALLOCATE ALL on a rollback, a DISCARD ALL) prepares them again and the read is run once more
    on it; one whose statement no longer fits the table is dropped and the read run on another."""
    return _run_as_caller(statement, params, writes=False)


def _run_as_caller(statement: ClauseElement, params: Mapping[str, Any], *, writes: bool) -> list[tuple[Any, ...]]:
    """caller_rows' and caller_changes' one query: `statement` between BEGIN and COMMIT as the
    caller, prepared once a pooled connection (see caller_rows). A statement whose prepared form was
    lost or no longer fits its table failed before it ran (its transaction rolled back), so it is
    run once more, a read or a write; after a disconnect only a read is (a write may have committed
    before the connection went)."""
    ombaro = Ombaro.get()
    engine = ombaro.engine
    compiled = _COMPILED.get(id(statement))
    if compiled is None or compiled.statement is not statement:
        compiled = _COMPILED[id(statement)] = _compile(statement, engine.dialect)
    prepares = ombaro.settings.database_pooler != "transaction"
    values = {**params, **_act_as_values()}
    pooled: PoolProxiedConnection | None = engine.raw_connection()
    try:
        for attempt in (1, 2):
            assert pooled is not None
            try:
                return _read(pooled, compiled, values, prepares=prepares)
            except engine.dialect.loaded_dbapi.Error as error:
                disconnected = engine.dialect.is_disconnect(error, pooled.dbapi_connection, None)
                if disconnected:
                    # As SQLAlchemy does on a disconnect: this connection is dropped, and so are the
                    # others pooled beside it (the server went away under all of them), not handed
                    # out to fail one by one.
                    pooled.invalidate(error)
                    engine.dispose(close=False)
                lost = prepares and isinstance(error, psycopg.errors.InvalidSqlStatementName)
                changed = prepares and _plan_changed(error)
                if attempt == 2 or not (lost or changed or (disconnected and not writes)):
                    if writes:
                        raise _as_sqlalchemy(error, engine) from error
                    raise
                if lost:
                    # The connection is fine, its prepared statements are gone: psycopg sends
                    # DEALLOCATE ALL when it rolls back a connection on which it prepared statements
                    # of its own (any statement run five times; SQLAlchemy rolls back each session
                    # that ends without a commit), and a DISCARD ALL takes them too. Prepared again,
                    # on this connection.
                    pooled.info.pop(_PREPARED, None)
                    continue
                if changed:
                    pooled.invalidate(error)  # this connection only: a new one prepares the statement afresh
                _release(pooled)
                pooled = None
                pooled = engine.raw_connection()
        raise AssertionError("unreachable")
    finally:
        if pooled is not None:
            _release(pooled)


def _as_sqlalchemy(error: Exception, engine: Engine) -> sa_exc.StatementError:
    """The driver's `error` as SQLAlchemy's exception class for it, as a Session raises it (web/errors.py maps them)."""
    return sa_exc.DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error)


def _read(pooled: PoolProxiedConnection, compiled: _Compiled, values: Mapping[str, Any], *,
          prepares: bool) -> list[tuple[Any, ...]]:
    """caller_rows' one query on `pooled`, sent with libpq's simple query as psycopg's client-side
    cursor would send it (the values quoted by the cursor's mogrify) and its rows loaded by the
    connection's types, without the cursor's execute and its bookkeeping of the query's four results
    (issue 16, session 10). psycopg adds no BEGIN of its own here, so the connection stays out of
    autocommit, as SQLAlchemy pools it (no switching in and out of autocommit either); a failed
    statement raises psycopg's error for it (as the cursor would) and its transaction is rolled back
    here. A connection left in any other state (a read cut off midway) fails SQLAlchemy's reset on
    return to the pool and is dropped there."""
    driver = cast(psycopg.Connection[Any], pooled.driver_connection)  # the engine's driver
    reader = pooled.info.get(_READER)
    if reader is None:  # one a connection: a new one looks its 20 columns' loaders up again
        reader = pooled.info[_READER] = _Reader(driver)
    try:
        if prepares:
            prepared: set[str] = pooled.info.setdefault(_PREPARED, set())
            for name, prepare in ((_ACT_AS_NAME, _PREPARE_ACT_AS), (compiled.name, compiled.prepare)):
                if name not in prepared:
                    with contextlib.suppress(psycopg.errors.DuplicatePreparedStatement):
                        # still there if the names were forgotten but it was not deallocated (a name is never reused)
                        reader.run(prepare)
                    prepared.add(name)
        return reader.rows(compiled.execute if prepares else compiled.simple, values)
    finally:
        if driver.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            driver.rollback()  # a statement failed: its transaction ends here
            pooled.info.pop(_PREPARED, None)  # and psycopg's ROLLBACK may have deallocated them all


class _Reader:
    """caller_rows' queries on one connection: the client-side cursor quotes the values into the
    text (its mogrify), libpq sends it as one simple query and the last result's rows are loaded
    by a Transformer kept for the connection (the loaders of its columns looked up once)."""

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        self.driver = driver
        self.quoting = psycopg.ClientCursor(driver)
        self.loading = Transformer.from_context(driver)

    def run(self, sql: str, values: Mapping[str, Any] | None = None) -> list[psycopg.pq.abc.PGresult]:
        """The results of `sql`, a simple query of one or more statements, with `values` quoted into
        it; the first failed statement's error raised (PostgreSQL runs none after it)."""
        driver = self.driver
        encoding = driver.info.encoding
        text = sql if values is None else self.quoting.mogrify(sql, values)
        pgconn = driver.pgconn
        with driver.lock:
            pgconn.send_query(text.encode(encoding))
            results: list[psycopg.pq.abc.PGresult] = driver.wait(generators.execute(pgconn))
        for result in results:
            if result.status not in _SUCCEEDED:
                raise psycopg.errors.error_from_result(result, encoding=encoding)
        return results

    def rows(self, sql: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of `sql`'s statement before its last (the COMMIT)."""
        result = self.run(sql, values)[-2]
        loading = self.loading
        loading.set_pgresult(result)
        rows: list[tuple[Any, ...]] = loading.load_rows(0, result.ntuples, tuple)
        return rows


def _release(pooled: PoolProxiedConnection) -> None:
    """A connection caller_rows or caller_write used, back to the pool (or dropped if broken)."""
    driver_left = pooled.driver_connection if pooled.dbapi_connection is not None else None
    if driver_left is not None and driver_left.autocommit:
        pooled.invalidate()  # could not be reset (a broken connection): never pooled in autocommit
    pooled.close()


def caller_changes(statement: ClauseElement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of `statement`, a statement that writes, as caller_rows reads: BEGIN, the caller's
    role and claims, the statement and COMMIT as one simple query (one round trip; committed, and
    synchronously so, durable, before this returns), the statement prepared once a pooled
    connection and EXECUTEd (not behind a transaction pooler). A command's job and audit line
    (web.commanding; issue 16, sessions 7 and 11). `params` are quoted by psycopg as they are;
    `statement` must be one long-lived object (compiled here once). Never sent twice once it may
    have committed (a disconnect is the error, not a retry); a refused statement raises
    SQLAlchemy's exception classes, as the session would (web/errors.py maps them)."""
    return _run_as_caller(statement, params, writes=True)


def caller_write(queue: Callable[[psycopg.Connection[Any]], Callable[[], T]], *,
                 settings: Mapping[str, str] | None = None) -> T:
    """One transaction as the request role with the caller's claims, as db_session's run, sent in
    one round trip (issue 16): the role and claims (and `settings`, transaction-local
    configuration such as synchronous_commit, in the same statement) and the statements `queue`
    puts on the driver's connection go in one psycopg pipeline on a pooled connection, with one
    Sync at its end; then the function `queue` returned reads their results. A statement that
    fails rolls the whole transaction back and raises as the session would (SQLAlchemy's exception
    classes, which web/errors.py maps). Not retried on a lost connection: a write may have committed.

    The transaction is the pipeline's own: with no BEGIN, PostgreSQL runs every statement up to a
    Sync in one transaction and ends it at the Sync, committed if they all succeeded and rolled
    back otherwise (the protocol's "Pipelining" section). The connection is in autocommit
    meanwhile, so that psycopg adds no BEGIN of its own (its transaction handling in a pipeline
    syncs after BEGIN and after commit(): three round trips where one does, issue 16, session 5);
    no BEGIN and COMMIT statements either (two statements of five fewer, session 6)."""
    engine = Ombaro.get().engine
    act_as_values = _act_as_values()
    act_as = _ACT_AS
    for n, (name, value) in enumerate((settings or {}).items()):
        act_as += f", set_config(%(_setting{n})s, %(_value{n})s, true)"
        act_as_values |= {f"_setting{n}": name, f"_value{n}": value}
    pooled = engine.raw_connection()
    try:
        driver = cast(psycopg.Connection[Any], pooled.driver_connection)  # the engine's driver
        driver.autocommit = True  # the pipeline is the transaction
        try:
            with driver.pipeline():
                driver.cursor().execute(act_as, act_as_values)
                answer = queue(driver)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, pooled.dbapi_connection, None):
                pooled.invalidate(error)  # as caller_rows: the server went away under the whole pool
                engine.dispose(close=False)
            raise _as_sqlalchemy(error, engine) from error
        finally:
            if pooled.dbapi_connection is not None:
                if driver.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    driver.rollback()  # only if `queue` opened a transaction block of its own
                if driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    driver.autocommit = False  # back to the pool as SQLAlchemy left it
        return answer()
    finally:
        _release(pooled)
