"""The audit log: every state-changing request by a staff role, written on the service
connection after the request. The request role may insert but never update or delete it, and a
trigger refuses updates and deletes to everyone (migration 0003)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.orm import Session

from ombaro.models.access import AuditLog


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
    conn.execute(_APPEND, {
        "actor_id": actor_id, "actor_role": actor_role, "method": method, "path": path[:500], "endpoint": endpoint,
        "status": status, "ip": ip, "user_agent": (user_agent or "")[:300] or None, "request_id": request_id,
        "details": details or {}})


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
