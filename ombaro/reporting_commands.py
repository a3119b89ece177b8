"""The commands of reporting (ombaro/reporting.py): `reports.refresh`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import commands, reporting


@dataclass(frozen=True)
class RefreshReports(commands.Params):
    views: list[str] | None = None


class RefreshReportsSchema(commands.ParamsSchema):
    model = RefreshReports
    views = fields.List(fields.String(validate=validate.OneOf(reporting.VIEWS)),
                        validate=validate.Length(min=1, max=len(reporting.VIEWS)),
                        metadata={"description": "views to refresh; all when omitted"})


class ViewRefreshSchema(Schema):
    view = fields.String(metadata={"enum": list(reporting.VIEWS)})
    concurrent = fields.Boolean(metadata={"description": "refreshed without blocking readers"})
    duration_ms = fields.Integer()
    rows = fields.Integer()


class RefreshReportsResultSchema(Schema):
    views = fields.List(fields.Nested(ViewRefreshSchema))


def refresh_reports(params: RefreshReports, ctx: commands.Context) -> dict[str, Any]:
    return reporting.refresh_views(ctx.session, params.views, zone=ctx.env.settings.timezone, job_id=ctx.job.id,
                                   progress=ctx.progress)


commands.declare(commands.Command(
    kind="reports.refresh", params=RefreshReportsSchema, handler=refresh_reports, queue="maintenance",
    permission=("reports", "create"), result=RefreshReportsResultSchema,
    description="Refresh the reporting views (all, or the ones named) without blocking readers.",
    example={"views": ["dashboard_stats"]}))
