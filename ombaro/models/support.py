"""Support: customers' tickets, the conversation on each, and in-app notifications."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

TICKET_CATEGORIES = (
    "booking_issue", "payment_issue", "service_quality", "technical", "feedback", "other",
)
TICKET_PRIORITIES = ("low", "medium", "high", "urgent")
TICKET_STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")
SENDER_TYPES = ("customer", "employee", "system")
NOTIFICATION_TYPES = (
    "booking_confirmed", "booking_cancelled", "therapist_assigned", "therapist_arrived",
    "service_started", "service_completed", "payment_received", "refund_processed",
    "promotion", "reminder", "system_alert",
)


class SupportTicket(Base):
    """A customer's problem, assigned to an employee until resolved."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        CheckConstraint(f"category IN {TICKET_CATEGORIES!r}", name="category"),
        CheckConstraint(f"priority IN {TICKET_PRIORITIES!r}", name="priority"),
        CheckConstraint(f"status IN {TICKET_STATUSES!r}", name="status"),
        CheckConstraint("satisfaction_rating BETWEEN 1 AND 5", name="satisfaction_rating"),
        Index("idx_support_tickets_customer", "customer_id"),
        Index("idx_support_tickets_booking", "booking_id"),
        Index("idx_support_tickets_status", "status"),
        Index("idx_support_tickets_assigned", "assigned_to"),
        Index("idx_support_tickets_priority", "priority"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_number: Mapped[str] = mapped_column(unique=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"))
    category: Mapped[str]
    priority: Mapped[str] = mapped_column(server_default=text("'medium'"))
    subject: Mapped[str]
    description: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'open'"))
    assigned_to: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    assigned_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    resolution_notes: Mapped[str | None]
    satisfaction_rating: Mapped[int | None]
    attachments: Mapped[list[str] | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class TicketMessage(Base):
    """One message on a ticket; internal ones are notes between staff."""

    __tablename__ = "ticket_messages"
    __table_args__ = (
        CheckConstraint(f"sender_type IN {SENDER_TYPES!r}", name="sender_type"),
        Index("idx_ticket_messages_ticket", "ticket_id"),
        Index("idx_ticket_messages_sender", "sender_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"))
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id"))
    sender_type: Mapped[str]
    message: Mapped[str]
    attachments: Mapped[list[str] | None]
    is_internal: Mapped[bool | None] = mapped_column(server_default=text("false"))
    created_at: Mapped[dt.datetime] = created_at()


class Notification(Base):
    """A message to one user, and the channels it went out on."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"type IN {NOTIFICATION_TYPES!r}", name="type"),
        Index("idx_notifications_user", "user_id"),
        Index("idx_notifications_type", "type"),
        Index("idx_notifications_read", "is_read"),
        Index("idx_notifications_created", text("created_at DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    type: Mapped[str]
    title: Mapped[str]
    message: Mapped[str]
    data: Mapped[dict[str, Any] | None]  # related ids, deep link
    channels: Mapped[list[str] | None] = mapped_column(server_default=text("'{}'::text[]"))
    is_read: Mapped[bool | None] = mapped_column(server_default=text("false"))
    read_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()
