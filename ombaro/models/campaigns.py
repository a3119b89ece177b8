"""Messaging: one delivery per (campaign or event, user, channel), the development outbox, provider
webhook de-duplication, booking events waiting to be notified, and push devices (docs/campaigns.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at

CHANNELS = ("email", "sms", "whatsapp", "push", "in_app")
# pending -> sending -> sent -> delivered -> opened -> clicked; sending -> unknown (timed out) ->
# sent | pending (provably not accepted) | failed; any attempt -> failed | bounced; pending -> skipped.
DELIVERY_STATUSES = ("pending", "sending", "unknown", "sent", "delivered", "opened", "clicked", "bounced",
                     "failed", "skipped")
EVENT_STATUSES = ("pending", "done")


class Delivery(Base):
    """One message to one user on one channel, for a campaign or a booking event. The row is
    committed as `sending` before the provider is called and updated after; the unique keys make a
    second send for the same (campaign, customer, channel) impossible."""

    __tablename__ = "message_deliveries"
    __table_args__ = (
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        CheckConstraint("num_nonnulls(campaign_id, event_id) = 1", name="one_source"),
        # One delivery per (campaign, customer, channel) and per (event, user, channel). Partial:
        # the other source's rows (NULL there) take no room in the index.
        Index("uq_message_deliveries_campaign", "campaign_id", "user_id", "channel", unique=True,
              postgresql_where=text("campaign_id IS NOT NULL")),
        Index("uq_message_deliveries_event", "event_id", "user_id", "channel", unique=True,
              postgresql_where=text("event_id IS NOT NULL")),
        Index("ix_message_deliveries_provider_message_id", "provider_message_id",
              postgresql_where=text("provider_message_id IS NOT NULL")),
        # The weekly frequency cap counts a customer's marketing messages per channel.
        Index("ix_message_deliveries_cap", "user_id", "channel", "sent_at",
              postgresql_where=text("campaign_id IS NOT NULL AND sent_at IS NOT NULL")),
        # What a chunk claims: its campaign's pending rows of one channel, in customer order.
        Index("ix_message_deliveries_pending", "campaign_id", "channel", "user_id",
              postgresql_where=text("status = 'pending'")),
        Index("ix_message_deliveries_event_pending", "next_attempt_at",
              postgresql_where=text("status = 'pending' AND event_id IS NOT NULL")),
        Index("ix_message_deliveries_inflight", "sending_at",
              postgresql_where=text("status IN ('sending', 'unknown')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("notification_events.id",
                                                                        ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    channel: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    provider: Mapped[str | None]
    provider_message_id: Mapped[str | None]
    error: Mapped[str | None]
    next_attempt_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    sending_at: Mapped[dt.datetime | None]
    # The job and attempt whose worker is sending it: in doubt once that attempt's lease ran out.
    sending_job_id: Mapped[uuid.UUID | None]
    sending_attempt: Mapped[int | None]
    sent_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    clicked_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]  # its unsubscribe link was used (links work once)
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class OutboxMessage(Base):
    """A message the development outbox 'sent': what a provider would have received."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        Index("ix_outbox_messages_user", "user_id", text("created_at DESC")),
        Index("ix_outbox_messages_created", text("created_at DESC")),
        Index("ix_outbox_messages_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    channel: Mapped[str]
    recipient: Mapped[str]
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str | None]
    body: Mapped[str]
    headers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = created_at()


class MessagingWebhookEvent(Base):
    """A provider status event already applied: a redelivered webhook changes nothing."""

    __tablename__ = "messaging_webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),
                      Index("ix_messaging_webhook_events_received", "received_at"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    provider: Mapped[str]
    event_id: Mapped[str]
    received_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class NotificationEvent(Base):
    """A booking, dispatch or payment event to tell its people about (captured by triggers in the
    same transaction as the change, or by the reminder scan)."""

    __tablename__ = "notification_events"
    __table_args__ = (
        CheckConstraint(f"status IN {EVENT_STATUSES!r}", name="status"),
        Index("ix_notification_events_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    type: Mapped[str]  # one of support.NOTIFICATION_TYPES
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str | None] = mapped_column(unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    created_at: Mapped[dt.datetime] = created_at()
    processed_at: Mapped[dt.datetime | None]


class PushDevice(Base):
    """A device registration token (FCM) of a user; push goes to the most recently seen one."""

    __tablename__ = "push_devices"
    __table_args__ = (Index("ix_push_devices_user", "user_id", text("last_seen_at DESC")),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(unique=True)
    platform: Mapped[str | None]  # android, ios, web
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    disabled_at: Mapped[dt.datetime | None]  # the provider said the token is no longer valid
    created_at: Mapped[dt.datetime] = created_at()
