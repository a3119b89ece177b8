"""The development outbox (the default channel when no provider is configured) and in-app
notifications: both 'send' by inserting rows, listable through the API.

Each row carries the delivery id, so reconciliation can tell whether a message whose delivery was
left `sending` (a worker died after the insert) was in fact stored: see `stored_refs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from ombaro.db import WORKER_ROLE, act_as
from ombaro.models.campaigns import OutboxMessage
from ombaro.models.support import Notification
from ombaro.providers import record_call
from ombaro.providers.channels import Message, Result

WORKER_CLAIMS = {"role": "worker", "sub": None, "provider": "outbox"}


class Outbox:
    """Stores messages in `outbox_messages` instead of sending them."""

    provider = "outbox"
    per_request = 1000

    def __init__(self, engine: Engine, channel: str) -> None:
        self.engine, self.channel = engine, channel

    def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        rows = [{"channel": self.channel, "recipient": m.to, "user_id": m.user_id,
                 "delivery_id": int(m.ref) if m.ref.isdigit() else None, "subject": m.subject, "body": m.body,
                 "headers": dict(m.headers), "data": dict(m.data)} for m in messages]
        record_call(self.provider)  # the development stand-in counts as a provider call too
        with self.engine.begin() as conn:
            act_as(conn, WORKER_ROLE, WORKER_CLAIMS)
            ids = conn.execute(insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True),
                               rows).scalars().all()
        return [Result(m.ref, "sent", f"outbox-{i}") for m, i in zip(messages, ids, strict=True)]

    def stored_refs(self, refs: Iterable[int]) -> dict[int, str]:
        """delivery id -> provider id of those already in the outbox."""
        wanted = list(refs)
        if not wanted:
            return {}
        with self.engine.begin() as conn:
            act_as(conn, WORKER_ROLE, WORKER_CLAIMS)
            rows = conn.execute(select(OutboxMessage.delivery_id, OutboxMessage.id)
                                .where(OutboxMessage.delivery_id.in_(wanted))).all()
        return {delivery: f"outbox-{row_id}" for delivery, row_id in rows}


class InAppNotifications:
    """In-app messages are `notifications` rows; `to` is the user id."""

    provider = "in_app"
    per_request = 1000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        rows = [{"user_id": m.user_id or uuid.UUID(m.to), "type": m.kind, "title": m.subject or "",
                 "message": m.body, "data": {**m.data, "delivery_id": m.ref}, "channels": ["in_app"]}
                for m in messages]
        with self.engine.begin() as conn:
            act_as(conn, WORKER_ROLE, WORKER_CLAIMS)
            ids = conn.execute(insert(Notification).returning(Notification.id, sort_by_parameter_order=True),
                               rows).scalars().all()
        return [Result(m.ref, "sent", str(i)) for m, i in zip(messages, ids, strict=True)]

    def stored_refs(self, refs: Iterable[tuple[int, uuid.UUID]]) -> dict[int, str]:
        """(delivery id, user id) -> notification id of those already stored."""
        wanted = list(refs)
        if not wanted:
            return {}
        users = {user for _, user in wanted}
        ids = {str(delivery) for delivery, _ in wanted}
        with self.engine.begin() as conn:
            act_as(conn, WORKER_ROLE, WORKER_CLAIMS)
            rows = conn.execute(select(Notification.data["delivery_id"].astext, Notification.id)
                                .where(Notification.user_id.in_(users),
                                       Notification.data["delivery_id"].astext.in_(ids))).all()
        return {int(delivery): str(row_id) for delivery, row_id in rows}


def list_messages(session: Session, *, channels: Sequence[str], recipient: str | None, before_id: int | None,
                  limit: int) -> Sequence[OutboxMessage]:
    """Stored messages newest first (row-level security: a user's own, or all for the IT desk), of
    any of `channels` (all when empty), to one recipient when given, ids below `before_id` (paging)."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if channels:
        query = query.where(OutboxMessage.channel.in_(channels))
    if recipient:
        query = query.where(OutboxMessage.recipient == recipient)
    if before_id is not None:
        query = query.where(OutboxMessage.id < before_id)
    return session.scalars(query).all()
