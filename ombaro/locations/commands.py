"""The commands of live locations (ombaro/locations/): the hourly `locations.prune`, and the
follow-up `locations.prune` with `reclaim_only` that frees the files of the hours it took out."""

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
    reclaim_only: bool | None = None


class PruneLocationsSchema(commands.ParamsSchema):
    model = PruneLocations
    retention_hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=24 * 366),
                                   metadata={"description": "keep this many hours of pings (default 24)"})
    batch_rows = fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000_000),
                                metadata={"description": "rows deleted per statement at the cutoff (default 50,000)"})
    lock_timeout_ms = fields.Integer(strict=True, validate=validate.Range(min=1, max=600_000),
                                     metadata={"description": "partition DDL's lock wait (default 2,000)"})
    reclaim_only = fields.Boolean(metadata={"description": (
        "only free the files of expired hours an earlier prune took out of the table (the follow-up "
        "job each prune submits); no partition is made or removed")})


class PruneLocationsResultSchema(Schema):
    cutoff = fields.DateTime()
    partitions_created = fields.Integer()
    analytics_partitions_created = fields.Integer()
    partitions_dropped = fields.Integer()
    dropped = fields.List(fields.String())
    dropped_in_one_transaction = fields.Boolean(
        metadata={"description": "false: the table's lock was busy and each hour was detached concurrently"})
    files_left_to_reclaim = fields.Boolean(
        metadata={"description": "true: the hours were detached into the reclaim area; a follow-up job frees them"})
    to_reclaim = fields.List(fields.String(), metadata={"description": "tables in the reclaim area after the prune"})
    reclaim_job_id = fields.UUID(allow_none=True, metadata={"description": "the follow-up job that frees them"})
    reclaimed = fields.List(fields.String(), metadata={"description": "reclaim_only: the tables freed and dropped"})
    tables_reclaimed = fields.Integer()
    bytes_freed = fields.Integer()
    left_to_reclaim = fields.List(fields.String(), metadata={"description": "reclaim_only: left for the next one"})
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
    lock_timeout_ms = params.lock_timeout_ms or 2000
    if params.reclaim_only:
        return locations.reclaim(ctx.env.engine, lock_timeout_ms=lock_timeout_ms)
    retention = dt.timedelta(hours=params.retention_hours) if params.retention_hours else locations.RETENTION
    result = locations.prune(ctx.env.engine, job_id=ctx.job.id, progress=ctx.progress,
                             redis=redis_client(ctx.env.settings.redis_url), retention=retention,
                             batch_rows=params.batch_rows or 50_000, lock_timeout_ms=lock_timeout_ms)
    result["reclaim_job_id"] = None
    if result["to_reclaim"]:  # the files are freed by a job of their own, committed with this one's result
        follow_up = commands.submit(ctx.session, "locations.prune", {"reclaim_only": True}, enqueue=ctx.env.enqueue,
                                    key=f"reclaim:{ctx.job.id}", scope="locations",
                                    requested_by=ctx.job.requested_by)
        result["reclaim_job_id"] = str(follow_up.job.id)
    return result


commands.declare(commands.Command(
    kind="locations.prune", params=PruneLocationsSchema, handler=prune_locations, queue="maintenance",
    permission=("jobs", "create"), result=PruneLocationsResultSchema,
    description="Create live-location partitions ahead, drop pings older than the retention.",
    example={"retention_hours": 24}))
