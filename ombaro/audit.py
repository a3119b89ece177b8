"""The audit log: every state-changing request by a staff role, written on the service
connection after the request. The request role may insert but never update or delete it, and a
trigger refuses updates and deletes to everyone (migration 0003)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import Session

from ombaro.models.access import AuditLog

_DIALECT = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialects are not annotated


def record(engine: Engine, *, actor_id: uuid.UUID | None, actor_role: str | None, method: str, path: str,
           endpoint: str | None, status: int, ip: str | None, user_agent: str | None, request_id: str | None,
           details: dict[str, Any] | None = None) -> None:
    """One line, committed on its own (after the request's own work)."""
    with engine.begin() as conn:
        append(conn, actor_id=actor_id, actor_role=actor_role, method=method, path=path, endpoint=endpoint,
               status=status, ip=ip, user_agent=user_agent, request_id=request_id, details=details)


def append(conn: Session | Connection, *, actor_id: uuid.UUID | None, actor_role: str | None, method: str,
           path: str, endpoint: str | None, status: int, ip: str | None, user_agent: str | None,
           request_id: str | None, details: dict[str, Any] | None = None) -> None:
    """One line in the caller's transaction: it commits with the change it describes (a command's
    submission writes its line with its job, so one commit instead of two)."""
    conn.execute(_APPEND, values(actor_id=actor_id, actor_role=actor_role, method=method, path=path, endpoint=endpoint,
                                 status=status, ip=ip, user_agent=user_agent, request_id=request_id, details=details))


def values(*, actor_id: uuid.UUID | None, actor_role: str | None, method: str, path: str, endpoint: str | None,
           status: int, ip: str | None, user_agent: str | None, request_id: str | None,
           details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A line's column values as it is stored (the path and user agent cut to their bounds)."""
    return {"actor_id": actor_id, "actor_role": actor_role, "method": method, "path": path[:500], "endpoint": endpoint,
            "status": status, "ip": ip, "user_agent": (user_agent or "")[:300] or None, "request_id": request_id,
            "details": details or {}}


COLUMNS = ("actor_id", "actor_role", "method", "path", "endpoint", "status", "ip", "user_agent", "request_id",
           "details")


def insert_per_row(source: str, prefix: str) -> str:
    """The INSERT of one line per row of `source` (a query, or a WITH query's name), as SQL text for
    a statement that writes the line only if its change happened (a submit's line only with a new
    job, ombaro.commands.insert_job). Its values are bound parameters (`:name`) named `prefix` +
    the column (`values`' keys; the statement around it may use the same names), each cast to its
    column's type (a parameter in a SELECT list would be text)."""
    table = AuditLog.__table__.c
    casts = ", ".join(f"CAST(:{prefix}{name} AS {table[name].type.compile(dialect=_DIALECT)})" for name in COLUMNS)
    return f"INSERT INTO audit_log ({', '.join(COLUMNS)}) SELECT {casts} FROM {source}"


# No RETURNING (SQLAlchemy's insert() would return the id): a request role may append to the log
# but only auditors may read it, and RETURNING needs the read policy too.
_APPEND = text("""
    INSERT INTO audit_log (actor_id, actor_role, method, path, endpoint, status, ip, user_agent, request_id, details)
    VALUES (:actor_id, :actor_role, :method, :path, :endpoint, :status, :ip, :user_agent, :request_id, :details)
""").bindparams(bindparam("actor_id", type_=AuditLog.__table__.c.actor_id.type),
                bindparam("details", type_=AuditLog.__table__.c.details.type))


def latest(session: Session, limit: int) -> Sequence[AuditLog]:
    """The newest entries first."""
    return session.scalars(select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)).all()
