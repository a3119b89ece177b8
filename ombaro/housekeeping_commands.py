"""The commands of housekeeping (ombaro/housekeeping.py): the nightly `system.housekeeping`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import commands, housekeeping


@dataclass(frozen=True)
class Housekeeping(commands.Params):
    batch_rows: int | None = None
    max_batches: int | None = None
    pause_ms: int | None = None


class HousekeepingSchema(commands.ParamsSchema):
    model = Housekeeping
    batch_rows = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000),
                                metadata={"description": "rows deleted per transaction (default 5,000)"})
    max_batches = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000),
                                 metadata={"description": "batches per run, the rest waits for the next run "
                                                          "(default 2,000)"})
    pause_ms = fields.Integer(strict=True, validate=validate.Range(min=0, max=10_000),
                              metadata={"description": "pause between batches (default 0)"})


class PolicyOutcomeSchema(Schema):
    policy_id = fields.Integer()
    table = fields.String()
    kind = fields.String(metadata={"description": "the policy's kind: a kind, `family.*` or `*`"})
    status = fields.String(metadata={"description": "the policy's outcome, or `*`"})
    keep_for = fields.String(metadata={"description": "the interval, as PostgreSQL writes it"})
    cutoff = fields.DateTime(metadata={"description": "rows finished before this were deleted"})
    deleted = fields.Integer()


class KindOutcomeSchema(Schema):
    kind = fields.String()
    status = fields.String()
    deleted = fields.Integer()


class HousekeepingResultSchema(Schema):
    now = fields.DateTime(metadata={"description": "the database's clock the cutoffs were taken from"})
    deleted = fields.Integer()
    batches = fields.Integer()
    batch_rows = fields.Integer()
    complete = fields.Boolean(metadata={"description": "false when max_batches stopped the run"})
    by_policy = fields.List(fields.Nested(PolicyOutcomeSchema))
    by_kind = fields.List(fields.Nested(KindOutcomeSchema))
    kept_without_policy = fields.List(fields.String(), metadata={"description": "kinds no policy covers: kept"})
    duration_ms = fields.Integer()


def housekeep(params: Housekeeping, ctx: commands.Context) -> dict[str, Any]:
    # Each batch is a transaction of its own on the owner's connection; the job's transaction only
    # records the outcome, so it holds no lock a batch (or a hot path) waits for.
    return housekeeping.enforce(ctx.env.engine, commands.registry(), batch_rows=params.batch_rows or 5000,
                                max_batches=params.max_batches or 2000,
                                pause_seconds=(params.pause_ms or 0) / 1000, progress=ctx.progress)


commands.declare(commands.Command(
    kind="system.housekeeping", params=HousekeepingSchema, handler=housekeep, queue="maintenance",
    permission=("jobs", "create"), result=HousekeepingResultSchema,
    description="Delete what the retention policies let go (finished jobs past their keep), in bounded batches.",
    example={"batch_rows": 5000, "max_batches": 100}))
