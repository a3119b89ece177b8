"""Product analytics: raw events from the apps, in a table partitioned by month."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base


class AnalyticsEvent(Base):
    """One event (page view, search, booking started).

    Partitioned by RANGE (timestamp), one partition per UTC month plus a default one; the migration
    creates them and `ensure_monthly_partitions()` adds more. A partitioned table's primary key must
    contain the partition key, hence (id, timestamp).
    """

    __tablename__ = "analytics_events"
    __table_args__ = (
        Index("idx_analytics_events_user", "user_id"),
        Index("idx_analytics_events_name", "event_name"),
        Index("idx_analytics_events_timestamp", text("timestamp DESC")),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id", ondelete="SET NULL"))
    session_id: Mapped[str | None]
    event_name: Mapped[str]  # 'page_view', 'button_click', 'search', 'booking_started'
    event_category: Mapped[str | None]
    event_properties: Mapped[dict[str, Any] | None] = mapped_column(server_default=text("'{}'::jsonb"))
    device_info: Mapped[dict[str, Any] | None]  # {platform, os, browser, app_version}
    location_info: Mapped[dict[str, Any] | None]  # {city, state, country}
    timestamp: Mapped[dt.datetime] = mapped_column(primary_key=True, server_default=func.now())
