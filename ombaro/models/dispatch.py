"""Dispatch: the tables it adds (last known positions, booking-number counters), migration 0004,
docs/dispatch.md. The columns that migration adds to bookings, therapist assignments, customers and
promotion usage are declared in those tables' own models."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, updated_at, uuid_pk

# Assignment statuses that hold the therapist's time (the exclusion constraint's WHERE).
LIVE_ASSIGNMENT_STATUSES = ("assigned", "acknowledged", "in_transit", "reached", "in_progress")


class TherapistLastPosition(Base):
    """A therapist's latest fix, kept apart from the pings so pruning never loses it (and a Redis
    restart does not blind dispatch). Maintained by a statement trigger on therapist_locations."""

    __tablename__ = "therapist_last_positions"
    __table_args__ = (
        CheckConstraint("battery_level BETWEEN 0 AND 100", name="battery_level"),
        Index("idx_therapist_last_positions_vendor", "vendor_id"),
    )

    # The therapist's id (one row per therapist), as customers.id is the user's.
    id: Mapped[uuid.UUID] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"), primary_key=True)
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    latitude: Mapped[Decimal] = mapped_column(Numeric(10, 8))
    longitude: Mapped[Decimal] = mapped_column(Numeric(11, 8))
    accuracy: Mapped[Decimal | None]  # metres
    speed: Mapped[Decimal | None]  # km/h
    heading: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    battery_level: Mapped[int | None]
    is_moving: Mapped[bool | None]
    recorded_at: Mapped[dt.datetime]  # the ping's own timestamp
    updated_at: Mapped[dt.datetime] = updated_at()


class BookingNumberCounter(Base):
    """The last number handed out per platform-zone day (OBO-YYYYMMDD-NNNN). A trigger on bookings
    keeps it at least the highest number inserted by any other path, so numbers never collide."""

    __tablename__ = "booking_number_counters"
    __table_args__ = (CheckConstraint("last_number >= 0", name="last_number"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    day: Mapped[dt.date] = mapped_column(unique=True)
    last_number: Mapped[int] = mapped_column(server_default=text("0"))
    updated_at: Mapped[dt.datetime] = updated_at()
