"""Marketing: campaigns sent to customers, promotion codes, and each use of a code."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

CAMPAIGN_TYPES = ("email", "sms", "push", "in_app", "multi_channel")
CAMPAIGN_STATUSES = ("draft", "scheduled", "active", "paused", "completed", "cancelled")
PROMOTION_TYPES = ("percentage", "fixed_amount", "free_service", "free_addon")
PROMOTION_STATUSES = ("active", "inactive", "expired")


class Campaign(Base):
    """A message to a filtered audience over one or more channels."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"type IN {CAMPAIGN_TYPES!r}", name="type"),
        CheckConstraint(f"status IN {CAMPAIGN_STATUSES!r}", name="status"),
        Index("idx_campaigns_status", "status"),
        Index("idx_campaigns_dates", "start_date", "end_date"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str]
    type: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default=text("'draft'"))
    target_audience: Mapped[dict[str, Any] | None]  # {tier, city, age_range, last_booking_days}
    content: Mapped[dict[str, Any]]  # {subject, body, images, cta}
    start_date: Mapped[dt.datetime | None]
    end_date: Mapped[dt.datetime | None]
    budget: Mapped[Decimal | None]
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id"))
    approved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class Promotion(Base):
    """A discount code with its validity window and usage limits."""

    __tablename__ = "promotions"
    __table_args__ = (
        CheckConstraint(f"type IN {PROMOTION_TYPES!r}", name="type"),
        CheckConstraint(f"status IN {PROMOTION_STATUSES!r}", name="status"),
        Index("idx_promotions_status", "status"),
        Index("idx_promotions_dates", "valid_from", "valid_to"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    description: Mapped[str | None]
    type: Mapped[str | None]
    discount_value: Mapped[Decimal]
    min_booking_amount: Mapped[Decimal | None]
    max_discount_amount: Mapped[Decimal | None]
    applicable_services: Mapped[list[uuid.UUID] | None]  # empty means all services
    applicable_vendors: Mapped[list[uuid.UUID] | None]  # empty means all vendors
    usage_limit_per_customer: Mapped[int | None] = mapped_column(server_default=text("1"))
    total_usage_limit: Mapped[int | None]
    current_usage_count: Mapped[int | None] = mapped_column(server_default=text("0"))
    valid_from: Mapped[dt.datetime]
    valid_to: Mapped[dt.datetime]
    terms_and_conditions: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class PromotionUsage(Base):
    """One use of a promotion on one booking."""

    __tablename__ = "promotion_usage"
    __table_args__ = (
        Index("idx_promotion_usage_promotion", "promotion_id"),
        Index("idx_promotion_usage_customer", "customer_id"),
        Index("idx_promotion_usage_booking", "booking_id"),
        # A booking records its promotion once, however many requests race (migration 0004).
        Index("uq_promotion_usage_booking", "booking_id", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    promotion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("promotions.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    discount_amount: Mapped[Decimal]
    used_at: Mapped[dt.datetime | None] = mapped_column(server_default=func.now())
