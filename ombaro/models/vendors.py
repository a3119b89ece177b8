"""Who delivers the services: vendors, their staff, and their therapists' schedules, leaves and positions."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Computed, ForeignKey, Index, Numeric, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk
from ombaro.models.identity import GENDERS

BUSINESS_TYPES = ("spa", "salon", "home_service", "hotel_spa", "wellness_center")
VERIFICATION_STATUSES = ("pending", "verified", "rejected")
VENDOR_STATUSES = ("active", "inactive", "suspended")
VENDOR_STAFF_STATUSES = ("active", "inactive")
THERAPIST_STATUSES = ("active", "inactive", "on_leave", "terminated")
AVAILABILITY_STATUSES = ("available", "busy", "offline")
THERAPIST_LEAVE_TYPES = ("sick", "casual", "emergency", "annual")
LEAVE_DECISIONS = ("pending", "approved", "rejected")

# The point the vendor's GiST index is built on; a nearby-vendors query must use the same expression.
VENDOR_EARTH_POINT = (
    "ll_to_earth((business_address ->> 'latitude')::float8, (business_address ->> 'longitude')::float8)"
)


class Vendor(Base):
    """A business (spa, salon, home-service outfit). Its id is its owner's user id."""

    __tablename__ = "vendors"
    __table_args__ = (
        CheckConstraint(f"business_type IN {BUSINESS_TYPES!r}", name="business_type"),
        CheckConstraint(f"verification_status IN {VERIFICATION_STATUSES!r}", name="verification_status"),
        CheckConstraint(f"status IN {VENDOR_STATUSES!r}", name="status"),
        CheckConstraint("pan_status IN ('operative', 'inoperative')", name="pan_status"),
        CheckConstraint("taxpayer_type IN ('individual', 'huf', 'firm', 'company', 'llp', 'other')",
                        name="taxpayer_type"),
        Index("idx_vendors_status", "status"),
        Index("idx_vendors_verification", "verification_status"),
        Index("idx_vendors_rating", text("rating DESC")),
        Index("idx_vendors_location", text(VENDOR_EARTH_POINT), postgresql_using="gist"),
    )

    id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"), primary_key=True)
    business_name: Mapped[str]
    business_type: Mapped[str | None]
    gst_number: Mapped[str | None]
    pan_number: Mapped[str | None]
    business_address: Mapped[dict[str, Any]]  # full address with numeric latitude / longitude
    contact_person: Mapped[str]
    contact_mobile: Mapped[str]
    contact_email: Mapped[str]
    services_offered: Mapped[list[uuid.UUID] | None]
    operating_hours: Mapped[dict[str, Any] | None]  # {monday: {open, close, closed}, ...}
    rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2), server_default=text("0.00"))
    total_reviews: Mapped[int | None] = mapped_column(server_default=text("0"))
    verification_status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    verification_documents: Mapped[list[Any] | None]  # document URLs
    commission_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default=text("15.00"))
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    # Migration 0017 (docs/settlements.md): the PAN's status (inoperative: not linked to Aadhaar)
    # from `pan_status_on`; NULL with a PAN counts as operative. Taxpayer type and Aadhaar decide
    # the Rs 5 lakh exemption of s.194-O(4) (individuals and HUFs).
    pan_status: Mapped[str | None]
    pan_status_on: Mapped[dt.date | None]
    taxpayer_type: Mapped[str | None]
    aadhaar_furnished: Mapped[bool] = mapped_column(server_default=text("false"))


class VendorStaff(Base):
    """A vendor's manager, receptionist or admin."""

    __tablename__ = "vendor_staff"
    __table_args__ = (
        CheckConstraint(f"status IN {VENDOR_STAFF_STATUSES!r}", name="status"),
        Index("idx_vendor_staff_vendor", "vendor_id"),
        Index("idx_vendor_staff_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"))
    name: Mapped[str]
    role: Mapped[str]  # 'manager', 'receptionist', 'admin'
    mobile: Mapped[str]
    email: Mapped[str | None]
    permissions: Mapped[list[str] | None]
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class Therapist(Base):
    """A therapist working for one vendor."""

    __tablename__ = "therapists"
    __table_args__ = (
        CheckConstraint(f"gender IN {GENDERS!r}", name="gender"),
        CheckConstraint(f"status IN {THERAPIST_STATUSES!r}", name="status"),
        CheckConstraint(f"availability_status IN {AVAILABILITY_STATUSES!r}", name="availability_status"),
        Index("idx_therapists_vendor", "vendor_id"),
        Index("idx_therapists_user", "user_id"),
        Index("idx_therapists_status", "status"),
        Index("idx_therapists_availability", "availability_status"),
        Index("idx_therapists_rating", text("rating DESC")),
        Index("idx_therapists_specialization", "specialization", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id", ondelete="SET NULL"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    name: Mapped[str]
    email: Mapped[str] = mapped_column(unique=True)
    mobile: Mapped[str]
    gender: Mapped[str | None]
    date_of_birth: Mapped[dt.date | None]
    profile_image: Mapped[str | None]
    specialization: Mapped[list[str] | None] = mapped_column(server_default=text("'{}'::text[]"))  # codes
    experience_years: Mapped[int | None] = mapped_column(server_default=text("0"))
    certifications: Mapped[list[Any] | None] = mapped_column(server_default=text("'[]'::jsonb"))
    languages: Mapped[list[str] | None] = mapped_column(server_default=text("'{}'::text[]"))
    rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2), server_default=text("0.00"))
    total_reviews: Mapped[int | None] = mapped_column(server_default=text("0"))
    total_services: Mapped[int | None] = mapped_column(server_default=text("0"))
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    availability_status: Mapped[str] = mapped_column(server_default=text("'offline'"))
    emergency_contact: Mapped[dict[str, Any] | None]  # {name, relation, phone}
    address: Mapped[dict[str, Any] | None]
    bank_details: Mapped[dict[str, Any] | None]  # encrypted by the application before it is stored
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class TherapistSchedule(Base):
    """A therapist's working hours on one weekday (0 = Sunday)."""

    __tablename__ = "therapist_schedules"
    __table_args__ = (
        CheckConstraint("day_of_week BETWEEN 0 AND 6", name="day_of_week"),
        UniqueConstraint("therapist_id", "day_of_week"),
        Index("idx_therapist_schedules_therapist", "therapist_id"),
        Index("idx_therapist_schedules_day", "day_of_week"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    day_of_week: Mapped[int]
    start_time: Mapped[dt.time]
    end_time: Mapped[dt.time]
    is_available: Mapped[bool | None] = mapped_column(server_default=text("true"))
    break_start: Mapped[dt.time | None]
    break_end: Mapped[dt.time | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class TherapistLeave(Base):
    """A therapist's leave request; total_days is computed by the database."""

    __tablename__ = "therapist_leaves"
    __table_args__ = (
        CheckConstraint(f"leave_type IN {THERAPIST_LEAVE_TYPES!r}", name="leave_type"),
        CheckConstraint(f"status IN {LEAVE_DECISIONS!r}", name="status"),
        CheckConstraint("end_date >= start_date", name="dates_ordered"),
        Index("idx_therapist_leaves_therapist", "therapist_id"),
        Index("idx_therapist_leaves_status", "status"),
        Index("idx_therapist_leaves_dates", "start_date", "end_date"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    leave_type: Mapped[str]
    start_date: Mapped[dt.date]
    end_date: Mapped[dt.date]
    total_days: Mapped[int | None] = mapped_column(Computed("end_date - start_date + 1", persisted=True))
    reason: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    approved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id"))
    approved_at: Mapped[dt.datetime | None]
    rejection_reason: Mapped[str | None]
    documents: Mapped[list[str] | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class TherapistLocation(Base):
    """One GPS fix from a therapist's phone. Rows older than a day are pruned.

    Partitioned by RANGE (timestamp), one partition per UTC hour plus a catch-all below the first
    hour (migration 0004): pruning drops whole expired hours instead of deleting rows. A partitioned
    table's primary key must contain the partition key, hence (id, timestamp).
    """

    __tablename__ = "therapist_locations"
    __table_args__ = (
        CheckConstraint("battery_level BETWEEN 0 AND 100", name="battery_level"),
        Index("idx_therapist_locations_timestamp", text("timestamp DESC")),
        # Stands in for the spec's cleanup index (its now() predicate is rejected): latest fix per therapist.
        # It also serves lookups by therapist, so the spec's single-column index is left out.
        Index("idx_therapist_locations_latest", "therapist_id", text("timestamp DESC")),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    latitude: Mapped[Decimal] = mapped_column(Numeric(10, 8))
    longitude: Mapped[Decimal] = mapped_column(Numeric(11, 8))
    accuracy: Mapped[Decimal | None]  # metres
    altitude: Mapped[Decimal | None]
    speed: Mapped[Decimal | None]  # km/h
    heading: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))  # degrees
    battery_level: Mapped[int | None]
    is_moving: Mapped[bool | None] = mapped_column(server_default=text("false"))
    # NOT NULL (the spec allows NULL): a NULL fix would sort first under DESC and never be pruned.
    timestamp: Mapped[dt.datetime] = mapped_column(primary_key=True, server_default=func.now())
