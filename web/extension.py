"""What the app holds for the request handlers: settings, engine, sessions and the enqueuer."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ombaro.commands import Enqueue
from ombaro.config import Settings


@dataclass(frozen=True)
class Ombaro:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    enqueue: Enqueue

    @staticmethod
    def get() -> Ombaro:
        return current_app.extensions["ombaro"]

    @staticmethod
    def close_session(_exc: BaseException | None = None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def db_session() -> Session:
    """The request's session; one transaction per request is opened by the handler with begin()."""
    if "db_session" not in g:
        g.db_session = Ombaro.get().sessions()
    return g.db_session
