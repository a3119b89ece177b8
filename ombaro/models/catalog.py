"""What can be booked: services, packages of services, and add-ons."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, Computed, Index, Numeric, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

SERVICE_CATEGORIES = ("relaxation", "therapeutic", "specialty", "couples", "wellness")

# coalesce: the spec's `name || ' ' || description || ...` is NULL (unsearchable) when any part is NULL.
SERVICE_SEARCH_DOCUMENT = (
    "to_tsvector('english', coalesce(name, '') || ' ' || coalesce(description, '') || ' ' "
    "|| coalesce(techniques, ''))"
)


class Service(Base):
    """A treatment in the catalogue, priced per 60 minutes."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(f"category IN {SERVICE_CATEGORIES!r}", name="category"),
        CheckConstraint("pressure_level BETWEEN 1 AND 5", name="pressure_level"),
        Index("idx_services_category", "category"),
        Index("idx_services_active", "is_active"),
        Index("idx_services_search", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(unique=True)  # 'ARO', 'SWD', 'DPT'
    name: Mapped[str]
    category: Mapped[str]
    description: Mapped[str | None]
    style: Mapped[str | None]
    pressure_level: Mapped[int | None]
    techniques: Mapped[str | None]
    focus_areas: Mapped[str | None]
    primary_benefits: Mapped[str | None]
    contraindications: Mapped[str | None]
    oils_products: Mapped[str | None]
    room_setup: Mapped[str | None]
    recommended_addons: Mapped[list[str] | None]
    duration_options: Mapped[list[int] | None]  # minutes
    base_price_60min: Mapped[Decimal]
    is_active: Mapped[bool | None] = mapped_column(server_default=text("true"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(SERVICE_SEARCH_DOCUMENT, persisted=True)
    )


class ServicePackage(Base):
    """Several services sold together at one price."""

    __tablename__ = "service_packages"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str]
    description: Mapped[str | None]
    service_ids: Mapped[list[uuid.UUID]]
    total_duration: Mapped[int]  # minutes
    package_price: Mapped[Decimal]
    discount_percentage: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default=text("0"))
    is_active: Mapped[bool | None] = mapped_column(server_default=text("true"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class AddonService(Base):
    """An extra added to a booked service (hot stones, aromatherapy oil)."""

    __tablename__ = "addon_services"

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    description: Mapped[str | None]
    duration: Mapped[int]  # minutes
    price: Mapped[Decimal]
    is_active: Mapped[bool | None] = mapped_column(server_default=text("true"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
