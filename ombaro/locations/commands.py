"""The commands of live locations (ombaro/locations/): the hourly `locations.prune`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import commands, locations
from ombaro.locations.positions import redis_client


@dataclass(frozen=True)
class PruneLocations(commands.Params):
    retention_hours: float | None = None
    batch_rows: int | None = None
    lock_timeout_ms: int | None = None


class PruneLocationsSchema(commands.ParamsSchema):
    model = PruneLocations
    retention_hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=24 * 366),
                                   metadata={"description": "keep this many hours of pings (default 24)"})
    batch_rows = fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000_000),
                                metadata={"description": "rows deleted per statement at the cutoff (default 50,000)"})
    lock_timeout_ms = fields.Integer(strict=True, validate=validate.Range(min=1, max=600_000),
                                     metadata={"description": "partition DDL's lock wait (default 2,000)"})


class PruneLocationsResultSchema(Schema):
    cutoff = fields.DateTime()
    partitions_created = fields.Integer()
    analytics_partitions_created = fields.Integer()
    partitions_dropped = fields.Integer()
    dropped = fields.List(fields.String())
    dropped_in_one_transaction = fields.Boolean(
        metadata={"description": "false: the table's lock was busy and each hour was detached concurrently"})
    rows_in_dropped_partitions = fields.Integer()
    rows_in_dropped_partitions_estimated = fields.Boolean(
        metadata={"description": "some hours' rows are the catalog's estimate (analysed, above 10,000 rows)"})
    rows_deleted_at_edge = fields.Integer()
    rows_removed = fields.Integer()
    deferred = fields.Raw()
    geo_members_removed = fields.Integer()
    oldest_ping_at = fields.DateTime(allow_none=True)
    oldest_ping_age_seconds = fields.Float(allow_none=True)
    stale = fields.Boolean()
    durations_ms = fields.Dict(keys=fields.String(), values=fields.Integer())


def prune_locations(params: PruneLocations, ctx: commands.Context) -> dict[str, Any]:
    # Partition DDL is the owner's and DETACH CONCURRENTLY needs its own autocommit connection;
    # this transaction only records the outcome, so it holds no lock the DDL waits for.
    retention = dt.timedelta(hours=params.retention_hours) if params.retention_hours else locations.RETENTION
    return locations.prune(ctx.env.engine, job_id=ctx.job.id, progress=ctx.progress,
                           redis=redis_client(ctx.env.settings.redis_url), retention=retention,
                           batch_rows=params.batch_rows or 50_000, lock_timeout_ms=params.lock_timeout_ms or 2000)


commands.declare(commands.Command(
    kind="locations.prune", params=PruneLocationsSchema, handler=prune_locations, queue="maintenance",
    permission=("jobs", "create"), result=PruneLocationsResultSchema,
    description="Create live-location partitions ahead, drop pings older than the retention.",
    example={"retention_hours": 24}))
