"""What was booked: bookings, their line items, the therapists sent to them, and the customers' reviews."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, FetchedValue, ForeignKey, Index, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, Range
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

BOOKING_TYPES = ("home_service", "spa_visit", "hotel_service")
BOOKING_STATUSES = (
    "pending", "confirmed", "assigned", "in_progress", "completed", "cancelled", "rescheduled",
)
BOOKING_PAYMENT_STATUSES = ("pending", "partial", "paid", "refunded")
ASSIGNMENT_STATUSES = (
    "assigned", "acknowledged", "in_transit", "reached", "in_progress", "completed", "cancelled",
)
REVIEW_STATUSES = ("pending", "approved", "rejected", "flagged")


class Booking(Base):
    """A customer's booking with one vendor, for one date and time.

    The money columns are not in the spec's table, but its dashboard view reads total_amount.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(f"booking_type IN {BOOKING_TYPES!r}", name="booking_type"),
        CheckConstraint(f"status IN {BOOKING_STATUSES!r}", name="status"),
        CheckConstraint(f"payment_status IN {BOOKING_PAYMENT_STATUSES!r}", name="payment_status"),
        CheckConstraint("total_amount >= 0", name="total_amount_not_negative"),
        Index("idx_bookings_customer", "customer_id"),
        Index("idx_bookings_vendor", "vendor_id"),
        Index("idx_bookings_status", "status"),
        Index("idx_bookings_date", "booking_date", "booking_time"),
        # "My latest bookings" under row-level security (migration 0003, docs/access.md).
        Index("idx_bookings_customer_date", "customer_id", text("booking_date DESC")),
        Index("idx_bookings_vendor_date", "vendor_id", text("booking_date DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    booking_number: Mapped[str] = mapped_column(unique=True)  # OBO-20250102-0001
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    booking_type: Mapped[str]
    service_location: Mapped[dict[str, Any]]  # {address, city, latitude, longitude, landmark}
    booking_date: Mapped[dt.date]
    booking_time: Mapped[dt.time]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    cancellation_reason: Mapped[str | None]
    cancelled_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id"))
    cancelled_at: Mapped[dt.datetime | None]
    payment_status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    promotion_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("promotions.id"))
    subtotal_amount: Mapped[Decimal] = mapped_column(server_default=text("0"))
    discount_amount: Mapped[Decimal] = mapped_column(server_default=text("0"))
    tax_amount: Mapped[Decimal] = mapped_column(server_default=text("0"))
    total_amount: Mapped[Decimal] = mapped_column(server_default=text("0"))
    special_instructions: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    # Added by dispatch (migration 0004): the outcome of the latest dispatch attempt (who was
    # excluded by which rule, or the winner), so operations see why a booking is still unassigned.
    dispatch_note: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class BookingItem(Base):
    """One service in a booking, with its add-ons as priced at booking time."""

    __tablename__ = "booking_items"
    __table_args__ = (
        Index("idx_booking_items_booking", "booking_id"),
        Index("idx_booking_items_service", "service_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    duration: Mapped[int]  # minutes
    price: Mapped[Decimal]
    quantity: Mapped[int | None] = mapped_column(server_default=text("1"))
    addon_services: Mapped[list[Any] | None] = mapped_column(server_default=text("'[]'::jsonb"))
    subtotal: Mapped[Decimal]
    created_at: Mapped[dt.datetime] = created_at()


class TherapistAssignment(Base):
    """A therapist sent to (part of) a booking, tracked from assignment to completion."""

    __tablename__ = "therapist_assignments"
    __table_args__ = (
        CheckConstraint(f"status IN {ASSIGNMENT_STATUSES!r}", name="status"),
        CheckConstraint("customer_rating BETWEEN 1 AND 5", name="customer_rating"),
        Index("idx_therapist_assignments_booking", "booking_id"),
        Index("idx_therapist_assignments_therapist", "therapist_id"),
        Index("idx_therapist_assignments_vendor", "vendor_id"),
        Index("idx_therapist_assignments_customer", "customer_id"),
        Index("idx_therapist_assignments_status", "status"),
        Index("idx_therapist_assignments_date", "assignment_date", "assignment_time"),
        CheckConstraint("travel_buffer_minutes >= 0", name="travel_buffer_minutes"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("therapists.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="RESTRICT"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    assignment_date: Mapped[dt.date]
    assignment_time: Mapped[dt.time]
    status: Mapped[str] = mapped_column(server_default=text("'assigned'"))
    location_address: Mapped[str]
    location_latitude: Mapped[Decimal | None] = mapped_column(Numeric(10, 8))
    location_longitude: Mapped[Decimal | None] = mapped_column(Numeric(11, 8))
    estimated_duration: Mapped[int]  # minutes
    actual_start_time: Mapped[dt.datetime | None]
    actual_end_time: Mapped[dt.datetime | None]
    actual_duration: Mapped[int | None]  # minutes
    distance_traveled: Mapped[Decimal | None]  # kilometres
    travel_time: Mapped[int | None]  # minutes
    customer_rating: Mapped[int | None]
    customer_feedback: Mapped[str | None]
    notes: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    # Added by dispatch (migration 0004, docs/dispatch.md):
    # [start, end + travel buffer) in UTC, written by a trigger from assignment_date/time (platform
    # zone), estimated_duration and travel_buffer_minutes; the exclusion constraint reads it.
    busy_period: Mapped[Range[dt.datetime]] = mapped_column(TSTZRANGE, FetchedValue())
    travel_buffer_minutes: Mapped[int] = mapped_column(server_default=text("0"))
    # Why this therapist: the winner's score breakdown and how many candidates each rule excluded.
    dispatch_decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    departed_at: Mapped[dt.datetime | None]
    arrived_at: Mapped[dt.datetime | None]


class Review(Base):
    """A customer's rating of a booking, its vendor and therapist; moderated before it is shown."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("overall_rating BETWEEN 1 AND 5", name="overall_rating"),
        CheckConstraint("service_quality_rating BETWEEN 1 AND 5", name="service_quality_rating"),
        CheckConstraint("professionalism_rating BETWEEN 1 AND 5", name="professionalism_rating"),
        CheckConstraint("cleanliness_rating BETWEEN 1 AND 5", name="cleanliness_rating"),
        CheckConstraint("value_for_money_rating BETWEEN 1 AND 5", name="value_for_money_rating"),
        CheckConstraint(f"status IN {REVIEW_STATUSES!r}", name="status"),
        Index("idx_reviews_booking", "booking_id"),
        Index("idx_reviews_customer", "customer_id"),
        Index("idx_reviews_vendor", "vendor_id"),
        Index("idx_reviews_therapist", "therapist_id"),
        Index("idx_reviews_status", "status"),
        Index("idx_reviews_rating", "overall_rating"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    vendor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    therapist_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("therapists.id", ondelete="SET NULL"))
    service_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("services.id"))
    overall_rating: Mapped[int]
    service_quality_rating: Mapped[int | None]
    professionalism_rating: Mapped[int | None]
    cleanliness_rating: Mapped[int | None]
    value_for_money_rating: Mapped[int | None]
    title: Mapped[str | None]
    review_text: Mapped[str | None]
    photos: Mapped[list[str] | None]
    would_recommend: Mapped[bool | None]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    moderated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    moderation_notes: Mapped[str | None]
    helpful_count: Mapped[int | None] = mapped_column(server_default=text("0"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
