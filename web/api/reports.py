"""Reports: refreshing the materialized views (a command) and reading the dashboard."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ombaro import reporting, reporting_commands
from web.auth import requires
from web.commanding import submit
from web.extension import db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import JobSchema

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Dashboards and their refresh")


class RefreshSchema(reporting_commands.RefreshReportsSchema):
    """The `reports.refresh` params."""


# One instance for every submit (as LISTING_QUERY in web/api/bookings.py): not built per request.
REFRESH_PARAMS = RefreshSchema()


class DashboardStatsSchema(Schema):
    confirmed_bookings = fields.Integer()
    completed_bookings = fields.Integer()
    cancelled_bookings = fields.Integer()
    total_bookings = fields.Integer()
    total_revenue = fields.Decimal(as_string=True, places=2)
    window_start = fields.Date()
    window_end = fields.Date()


class DashboardSchema(Schema):
    stats = fields.Nested(DashboardStatsSchema, allow_none=True,
                          metadata={"description": "null until the first refresh"})
    refreshed_at = fields.DateTime(allow_none=True)
    age_seconds = fields.Integer(allow_none=True)
    refresh_duration_ms = fields.Integer(allow_none=True)


class TrendQuerySchema(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    city = fields.String(validate=validate.Length(min=1, max=100))
    vendor_id = fields.UUID()

    @validates_schema
    def window(self, data: dict[str, Any], **_: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError("must not be before start", "end")
        if (data["end"] - data["start"]).days > 366:
            raise ValidationError("a window is at most 366 days", "end")


class TrendFiguresSchema(Schema):
    bookings = fields.Integer()
    completed = fields.Integer()
    cancelled = fields.Integer()
    revenue = fields.Decimal(as_string=True, places=2)


class TrendDaySchema(TrendFiguresSchema):
    day = fields.Date()


class TrendCitySchema(TrendFiguresSchema):
    city = fields.String()


class TrendVendorSchema(TrendFiguresSchema):
    vendor_id = fields.UUID()
    business_name = fields.String(allow_none=True, metadata={"description": "null if the caller may not read it"})


class TrendSchema(Schema):
    days = fields.List(fields.Nested(TrendDaySchema))
    by_city = fields.List(fields.Nested(TrendCitySchema))
    by_vendor = fields.List(fields.Nested(TrendVendorSchema))


@blp.post("/refresh")
@requires("reports", "create")
@idempotent
@blp.arguments(REFRESH_PARAMS, required=False)
@blp.response(202, JobSchema)
def refresh(params: reporting_commands.RefreshReports | None) -> Any:
    """Refresh the reporting views (all, or the ones named) without blocking readers."""
    return submit("reports.refresh", params or {})


@blp.get("/dashboard")
@requires("reports", "read")
@blp.response(200, DashboardSchema)
def dashboard() -> Any:
    """Bookings and revenue of the last 30 days, with when they were last refreshed."""
    return reporting.dashboard(db_session())


@blp.get("/trend")
@requires("reports", "read")
@blp.arguments(TrendQuerySchema, location="query", as_kwargs=True)
@blp.response(200, TrendSchema)
def trend(start: Any, end: Any, city: str | None = None, vendor_id: Any = None) -> Any:
    """Per day, and by city and by vendor (largest ten), from `daily_booking_stats`: as fresh as
    its last refresh (see /dashboard)."""
    return reporting.booking_trend(db_session(), start=start, end=end, city=city, vendor_id=vendor_id)
