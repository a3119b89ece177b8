"""Access bookkeeping (migration 0003): refresh tokens for the sessions of a login, and the
append-only audit log of what staff changed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, uuid_pk


class RefreshToken(Base):
    """One refresh token, stored as its hash. Tokens rotate within a family (one login); a token
    presented twice revokes its family. Read and written only on the owner connection."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("idx_refresh_tokens_family", "family_id"),
        Index("idx_refresh_tokens_user", "user_id"),
        {"schema": "auth"},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None]
    ip: Mapped[str | None]
    user_agent: Mapped[str | None]


class AuditLog(Base):
    """One state-changing request. A trigger refuses UPDATE, DELETE and TRUNCATE to everyone."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_log_at", text("at DESC")),
        Index("idx_audit_log_actor", "actor_id", text("at DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    actor_id: Mapped[uuid.UUID | None]  # no FK: the log outlives the accounts it mentions
    actor_role: Mapped[str | None]
    method: Mapped[str]
    path: Mapped[str]
    endpoint: Mapped[str | None]
    status: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None]
    user_agent: Mapped[str | None]
    request_id: Mapped[str | None]
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

