"""What the app holds for the request handlers: settings, engine, sessions, Redis and the enqueuer."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app, g
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from ombaro.commands import Enqueue
from ombaro.config import Settings
from ombaro.db import API_ROLE, act_as


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
