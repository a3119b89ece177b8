"""Customers: membership and loyalty, saved addresses, and the loyalty points ledger."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk
from ombaro.models.identity import GENDERS

MEMBERSHIP_TIERS = ("silver", "gold", "platinum", "diamond")
ADDRESS_TYPES = ("home", "work", "other")


class Customer(Base):
    """The customer side of a user (id = user id): tier, points, preferences, referrals."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(f"membership_tier IN {MEMBERSHIP_TIERS!r}", name="membership_tier"),
        Index("idx_customers_tier", "membership_tier"),
        Index("idx_customers_referred_by", "referred_by"),
        CheckConstraint(f"preferred_therapist_gender IN {GENDERS!r}", name="preferred_therapist_gender"),
    )

    id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"), primary_key=True)
    membership_tier: Mapped[str] = mapped_column(server_default=text("'silver'"))
    membership_start_date: Mapped[dt.date | None]
    loyalty_points: Mapped[int | None] = mapped_column(server_default=text("0"))
    total_bookings: Mapped[int | None] = mapped_column(server_default=text("0"))
    total_spent: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0"))
    preferred_services: Mapped[list[uuid.UUID] | None]
    preferred_therapists: Mapped[list[uuid.UUID] | None]
    preferred_vendors: Mapped[list[uuid.UUID] | None]
    communication_preferences: Mapped[dict[str, Any] | None] = mapped_column(
        server_default=text("'{}'::jsonb")
    )  # {email, sms, whatsapp, push}
    allergies: Mapped[list[str] | None]
    medical_conditions: Mapped[list[str] | None]
    special_requirements: Mapped[str | None]
    referral_code: Mapped[str | None] = mapped_column(unique=True)
    referred_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    referral_count: Mapped[int | None] = mapped_column(server_default=text("0"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    # Added by dispatch (migration 0004): a common wish in this trade, honoured as a hard rule.
    preferred_therapist_gender: Mapped[str | None]


class CustomerAddress(Base):
    """An address a customer saved for home services."""

    __tablename__ = "customer_addresses"
    __table_args__ = (
        CheckConstraint(f"address_type IN {ADDRESS_TYPES!r}", name="address_type"),
        Index("idx_customer_addresses_customer", "customer_id"),
        Index("idx_customer_addresses_type", "address_type"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    address_type: Mapped[str]
    label: Mapped[str | None]  # 'Home', 'Office', "Mom's Place"
    address_line1: Mapped[str]
    address_line2: Mapped[str | None]
    landmark: Mapped[str | None]
    city: Mapped[str]
    state: Mapped[str]
    pincode: Mapped[str]
    country: Mapped[str | None] = mapped_column(server_default=text("'India'"))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(10, 8))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(11, 8))
    is_default: Mapped[bool | None] = mapped_column(server_default=text("false"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class LoyaltyTransaction(Base):
    """One change to a customer's points (from the spec's example migration)."""

    __tablename__ = "loyalty_transactions"
    __table_args__ = (
        # Not in the spec: the ledger is read per customer, and the FK needs it for deletes.
        Index("idx_loyalty_transactions_customer", "customer_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    transaction_type: Mapped[str]
    points: Mapped[int]
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    description: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
