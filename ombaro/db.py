"""Engines and sessions. The domain receives a Session; it never commits or closes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from ombaro.config import load_settings

T = TypeVar("T")


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    # pool_pre_ping: workers live for days and the database may restart under them.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, future=True)


def get_engine() -> Engine:
    return engine_for(load_settings().database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with session_factory(engine)() as session, session.begin():
        yield session


API_ROLE = "ombaro_api"
WORKER_ROLE = "ombaro_worker"


def act_as(session: Session | Connection, db_role: str, claims: dict[str, Any] | None) -> None:
    """Run the rest of this transaction as `db_role` with `claims` (docs/access.md): row-level
    security then decides which rows exist. Both settings are transaction-local, so a pooled
    connection carries nothing into its next transaction."""
    if db_role not in (API_ROLE, WORKER_ROLE):
        raise ValueError(f"not a request role: {db_role}")
    session.execute(text(f"SET LOCAL ROLE {db_role}"))
    session.execute(text("SELECT set_config('request.jwt.claims', :claims, true)"),
                    {"claims": json.dumps(claims, default=str) if claims else ""})


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
