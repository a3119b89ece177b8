"""Dispatch: the tables it adds (last known positions, booking-number counters) and the columns it
adds to bookings, therapist assignments and customers (migration 0004, docs/dispatch.md).

The added columns are declared on the existing mapped classes from here, so the models of other
areas stay untouched and the schema tests still compare every column with the database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, FetchedValue, ForeignKey, Index, Integer, Numeric, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, updated_at, uuid_pk
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.customers import Customer
from ombaro.models.identity import GENDERS
from ombaro.models.marketing import PromotionUsage

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


# --- columns added to tables of other areas ------------------------------------------------------

# The outcome of the latest dispatch attempt (who was excluded by which rule, or the winner), so
# operations see why a booking is still unassigned.
Booking.dispatch_note = mapped_column("dispatch_note", JSONB, nullable=True)

# [start, end + travel buffer) in UTC, written by a trigger from assignment_date/time (platform
# zone), estimated_duration and travel_buffer_minutes; the exclusion constraint reads it.
TherapistAssignment.busy_period = mapped_column("busy_period", TSTZRANGE, FetchedValue(), nullable=False)
TherapistAssignment.travel_buffer_minutes = mapped_column(
    "travel_buffer_minutes", Integer, server_default=text("0"), nullable=False)
# Why this therapist: the winner's score breakdown and how many candidates each rule excluded.
TherapistAssignment.dispatch_decision = mapped_column("dispatch_decision", JSONB, nullable=True)
TherapistAssignment.departed_at = mapped_column(
    "departed_at", TherapistAssignment.__table__.c.actual_start_time.type, nullable=True)
TherapistAssignment.arrived_at = mapped_column(
    "arrived_at", TherapistAssignment.__table__.c.actual_start_time.type, nullable=True)
TherapistAssignment.__table__.append_constraint(
    CheckConstraint("travel_buffer_minutes >= 0", name="travel_buffer_minutes"))

# A common wish in this trade: dispatch honours it as a hard rule.
Customer.preferred_therapist_gender = mapped_column("preferred_therapist_gender", Text, nullable=True)
Customer.__table__.append_constraint(
    CheckConstraint(f"preferred_therapist_gender IN {GENDERS!r}", name="preferred_therapist_gender"))

# A booking records its promotion once, however many requests race (docs/dispatch.md).
Index("uq_promotion_usage_booking", PromotionUsage.__table__.c.booking_id, unique=True)
