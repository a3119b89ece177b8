"""Reports: refreshing the materialized views (a command) and reading the dashboard."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ombaro import reporting
from web.auth import requires
from web.commanding import submit
from web.extension import db_session
from web.schemas import JobSchema

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Dashboards and their refresh")


class RefreshSchema(Schema):
    views = fields.List(fields.String(validate=validate.OneOf(reporting.VIEWS)),
                        validate=validate.Length(min=1, max=len(reporting.VIEWS)),
                        metadata={"description": "views to refresh; all when omitted"})


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


@blp.post("/refresh")
@requires("reports", "create")
@blp.arguments(RefreshSchema, required=False)
@blp.response(202, JobSchema)
def refresh(params: dict[str, Any]) -> Any:
    """Refresh the reporting views (all, or the ones named) without blocking readers."""
    return submit("reports.refresh", params)


@blp.get("/dashboard")
@requires("reports", "read")
@blp.response(200, DashboardSchema)
def dashboard() -> Any:
    """Bookings and revenue of the last 30 days, with when they were last refreshed."""
    return reporting.dashboard(db_session())
