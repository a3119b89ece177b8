"""Settlements' commands (docs/settlements.md): a run (dry, or planned into batches), one batch,
one payout attempt, and the reconciliation of payouts whose outcome is unknown."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ombaro import commands
from ombaro.db import WORKER_ROLE, committed_as
from ombaro.payments import webhooks as payment_webhooks
from ombaro.providers import payment_provider
from ombaro.settlements import payouts, runs

MAX_VENDORS = 1000


def check_period(data: dict[str, Any]) -> None:
    """The period rule (runs.Period: ends on or after it starts, at most 92 days), as field errors."""
    start, end = data.get("period_start"), data.get("period_end")
    if (start is None) != (end is None):
        raise ValidationError("give both period_start and period_end, or neither (a scheduled run "
                              "settles the previous week)", "period_end" if start else "period_start")
    if start is not None and end is not None:
        try:
            runs.Period(start, end)
        except runs.InvalidPeriod as exc:
            raise ValidationError(str(exc), "period_end") from None


# --- settlements.run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettlements(commands.Params):
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    vendor_ids: list[uuid.UUID] | None = None
    dry_run: bool = False


class RunSettlementsSchema(commands.ParamsSchema):
    model = RunSettlements
    period_start = fields.Date(metadata={"description": "first day; with period_end, or neither (scheduled: "
                                                        "the previous week)"})
    period_end = fields.Date(metadata={"description": "last day; a period is at most 92 days"})
    vendor_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=MAX_VENDORS),
                             metadata={"description": "settle only these vendors; all when omitted"})
    dry_run = fields.Boolean(load_default=False, metadata={"description": "compute and return, write nothing"})

    @validates_schema
    def period_is_sane(self, data: dict[str, Any], **_: Any) -> None:
        check_period(data)


class SettlementLineSchema(Schema):
    vendor_id = fields.UUID()
    vendor_name = fields.String(allow_none=True)
    total_bookings = fields.Integer()
    items = fields.Integer()
    gross_amount = fields.Decimal(as_string=True, places=2)
    commission_amount = fields.Decimal(as_string=True, places=2)
    tds_amount = fields.Decimal(as_string=True, places=2)
    adjustment_amount = fields.Decimal(as_string=True, places=2)
    net_settlement_amount = fields.Decimal(as_string=True, places=2)
    status = fields.String()


class RunSettlementsResultSchema(Schema):
    """A dry run: `settlements` and `totals`; a real run: `run_id` and how many batches it fanned out."""

    dry_run = fields.Boolean()
    period_start = fields.Date()
    period_end = fields.Date()
    vendors_considered = fields.Integer()
    settlements = fields.List(fields.Nested(SettlementLineSchema))
    totals = fields.Dict(keys=fields.String(), metadata={"description": "sums of the amounts (decimal strings), "
                                                                           "settlements and items"})
    run_id = fields.UUID()
    vendors = fields.Integer()
    batches = fields.Integer()


def run_settlements(params: RunSettlements, ctx: commands.Context) -> dict[str, Any]:
    settings = ctx.env.settings
    if params.period_start and params.period_end:
        period = runs.Period(params.period_start, params.period_end)
    else:
        period = runs.period_of({}, ctx.job.scheduled_for, settings.timezone)
    if params.dry_run:
        return runs.dry_run(ctx.session, period, params.vendor_ids, zone=settings.timezone,
                            lookback_days=settings.settlement_lookback_days)
    return runs.start_run(ctx.session, ctx.job, period, params.vendor_ids,
                          batch_size=settings.settlement_batch_vendors, enqueue=ctx.env.enqueue,
                          zone=settings.timezone, lookback_days=settings.settlement_lookback_days)


# --- settlements.run_batch -----------------------------------------------------------------------


@dataclass(frozen=True)
class SettleBatch(commands.Params):
    run_id: uuid.UUID
    batch: int
    period_start: dt.date
    period_end: dt.date
    vendor_ids: list[uuid.UUID]


class SettleBatchSchema(commands.ParamsSchema):
    model = SettleBatch
    run_id = fields.UUID(required=True)
    batch = fields.Integer(required=True, validate=validate.Range(min=0))
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)
    vendor_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=MAX_VENDORS))

    @validates_schema
    def period_is_sane(self, data: dict[str, Any], **_: Any) -> None:
        check_period(data)


class SettleBatchResultSchema(Schema):
    run_id = fields.UUID(allow_none=True)
    period_start = fields.Date()
    period_end = fields.Date()
    vendors = fields.Integer()
    settlements_created = fields.Integer()
    net = fields.Decimal(as_string=True, places=2)


def settle_batch(params: SettleBatch, ctx: commands.Context) -> dict[str, Any]:
    return runs.settle_batch(ctx.session, run_id=params.run_id, period=runs.Period(params.period_start,
                                                                                    params.period_end),
                             vendor_ids=params.vendor_ids, requested_by=ctx.job.requested_by,
                             zone=ctx.env.settings.timezone,
                             lookback_days=ctx.env.settings.settlement_lookback_days, progress=ctx.progress)


# --- settlements.payout, settlements.reconcile -------------------------------------------------


@dataclass(frozen=True)
class SendPayout(commands.Params):
    payout_id: uuid.UUID


class SendPayoutSchema(commands.ParamsSchema):
    model = SendPayout
    payout_id = fields.UUID(required=True)


class SendPayoutResultSchema(Schema):
    payout_id = fields.UUID()
    status = fields.String(metadata={"description": "what the attempt came to (e.g. `payout processed`)"})


def send_payout(params: SendPayout, ctx: commands.Context) -> dict[str, Any]:
    # The send is recorded in a transaction of its own, committed before the provider is called.
    committed = committed_as(ctx.env.engine, WORKER_ROLE, {"role": "worker", "job": str(ctx.job.id), "sub": (
        str(ctx.job.requested_by) if ctx.job.requested_by else None)})
    status = payouts.send_payout(ctx.session, payment_provider(ctx.env.settings), params.payout_id,
                                 job_id=ctx.job.id, committed=committed)
    return {"payout_id": str(params.payout_id), "status": status}


@dataclass(frozen=True)
class ReconcilePayouts(commands.Params):
    pending_after_seconds: int = 600
    parked_overdue_after_seconds: int = 3600


class ReconcilePayoutsSchema(commands.ParamsSchema):
    model = ReconcilePayouts
    pending_after_seconds = fields.Integer(load_default=600, validate=validate.Range(min=0, max=86400))
    # Parked webhook events older than this are flagged overdue (ombaro/payments/webhooks.py).
    parked_overdue_after_seconds = fields.Integer(load_default=3600, validate=validate.Range(min=60, max=30 * 86400))


class ParkedSweepResultSchema(Schema):
    applied = fields.Integer(metadata={"description": "parked events applied: their entity appeared"})
    overdue = fields.Integer(metadata={"description": "parked events flagged overdue by this sweep"})
    parked = fields.Integer(metadata={"description": "events still parked"})


class ReconcilePayoutsResultSchema(Schema):
    checked = fields.Integer()
    processed = fields.Integer()
    failed = fields.Integer()
    held = fields.Integer()
    unchanged = fields.Integer()
    unreachable = fields.Integer()
    webhooks = fields.Nested(ParkedSweepResultSchema, metadata={"description": "the sweep of parked webhook events"})


def reconcile_payouts(params: ReconcilePayouts, ctx: commands.Context) -> dict[str, Any]:
    """Payouts of unknown outcome asked about; then parked webhook events whose entity appeared
    applied, and those parked past the age limit flagged."""
    counts = payouts.reconcile(ctx.session, payment_provider(ctx.env.settings),
                               pending_after_seconds=params.pending_after_seconds)
    overdue = dt.timedelta(seconds=params.parked_overdue_after_seconds)
    return {**counts, "webhooks": payment_webhooks.sweep_parked(ctx.session, overdue_after=overdue)}


commands.declare(
    commands.Command(
        kind="settlements.run", params=RunSettlementsSchema, handler=run_settlements, queue="bulk",
        permission=("settlements", "create"), result=RunSettlementsResultSchema,
        description="Settle a period (dry run: compute and return), fanning out settlements.run_batch jobs.",
        example={"period_start": "2025-06-02", "period_end": "2025-06-08", "dry_run": True}),
    commands.Command(
        kind=runs.BATCH_KIND, params=SettleBatchSchema, handler=settle_batch, queue="bulk",
        permission=("settlements", "create"), result=SettleBatchResultSchema,
        description="Settle one batch of a run's vendors in one transaction.",
        example={"run_id": "00000000-0000-0000-0000-000000000001", "batch": 0, "period_start": "2025-06-02",
                 "period_end": "2025-06-08", "vendor_ids": ["00000000-0000-0000-0000-000000000002"]}),
    commands.Command(
        kind=payouts.PAYOUT_KIND, params=SendPayoutSchema, handler=send_payout, queue="bulk",
        permission=("settlements", "approve"), result=SendPayoutResultSchema,
        description="Send one payout attempt (a pending one is sent, one of unknown outcome looked up).",
        example={"payout_id": "00000000-0000-0000-0000-000000000003"}),
    commands.Command(
        kind="settlements.reconcile", params=ReconcilePayoutsSchema, handler=reconcile_payouts, queue="bulk",
        permission=("settlements", "approve"), result=ReconcilePayoutsResultSchema,
        description="Ask the provider about payouts whose outcome is unknown; apply or flag parked webhook events.",
        example={}),
)
