"""Campaigns' commands (docs/campaigns.md): start a campaign (the fan-out into chunks), send one chunk,
the minutely start of due campaigns, and the reconciliation of deliveries in doubt."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from marshmallow import Schema, fields, validate

from ombaro import commands
from ombaro.campaigns import reconcile, sending
from ombaro.messaging import Runtime, TokenBucket
from ombaro.providers.channels import configured_channels

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime(env: commands.Environment) -> Runtime:
    """The delivery runtime (channels, provider throttle), built on first use in the worker process
    (after Celery's fork), then kept. Booking notifications use it too."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = env.settings
            client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
            _runtime = Runtime(engine=env.engine, settings=settings,
                               channels=configured_channels(settings.messaging, env.engine),
                               bucket=TokenBucket(client, settings.messaging.provider_rates), enqueue=env.enqueue)
        return _runtime


# --- campaigns.start -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartCampaign(commands.Params):
    campaign_id: uuid.UUID
    chunk_size: int | None = None


class StartCampaignSchema(commands.ParamsSchema):
    model = StartCampaign
    campaign_id = fields.UUID(required=True)
    chunk_size = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000),
                                metadata={"description": f"customers per chunk job (default {sending.CHUNK_SIZE})"})


class StartCampaignResultSchema(Schema):
    chunks = fields.Integer()
    customers = fields.Integer()
    channels = fields.List(fields.String())
    skipped = fields.String(metadata={"description": "why nothing was started (no such campaign, its status)"})


def start_campaign(params: StartCampaign, ctx: commands.Context) -> dict[str, Any]:
    return sending.start(ctx.session, runtime(ctx.env), ctx.job, ctx.progress, campaign_id=params.campaign_id,
                         chunk_size=params.chunk_size)


# --- campaigns.send_chunk --------------------------------------------------------------------------


@dataclass(frozen=True)
class SendChunk(commands.Params):
    campaign_id: uuid.UUID
    after: uuid.UUID
    upto: uuid.UUID
    start_job: uuid.UUID | None = None
    materialize: bool | None = None


class SendChunkSchema(commands.ParamsSchema):
    model = SendChunk
    campaign_id = fields.UUID(required=True)
    after = fields.UUID(required=True, metadata={"description": "customers with ids after this one"})
    upto = fields.UUID(required=True, metadata={"description": "up to and including this one"})
    start_job = fields.UUID(metadata={"description": "the campaigns.start job that made this chunk"})
    materialize = fields.Boolean(metadata={"description": "false: only send what is pending (reconciliation)"})


class SendChunkResultSchema(Schema):
    """The chunk's delivery counts per channel and outcome, and whether it stopped or continues later."""

    continued_at = fields.DateTime(metadata={"description": "the rest continues in a new job at this time"})
    stopped = fields.String(metadata={"description": "why sending stopped (paused, budget spent)"})


def send_chunk(params: SendChunk, ctx: commands.Context) -> dict[str, Any]:
    return sending.send_chunk(ctx.session, runtime(ctx.env), ctx.job, ctx.progress, campaign_id=params.campaign_id,
                              after=params.after, upto=params.upto, materialize_first=params.materialize is not False)


def after_chunk(job_id: uuid.UUID, env: commands.Environment) -> None:
    """Once the chunk's outcome is recorded: complete its campaign if nothing is left."""
    sending.finish_after_chunk(runtime(env), job_id)


# --- campaigns.start_due, campaigns.reconcile ------------------------------------------------------


class StartDueResultSchema(Schema):
    started = fields.Integer()
    ended = fields.Integer()
    completed = fields.Integer()
    metrics_refreshed = fields.Integer()


def start_due(params: commands.NoParams, ctx: commands.Context) -> dict[str, Any]:
    return sending.start_due(ctx.session, runtime(ctx.env), ctx.job, ctx.progress)


class ReconcileResultSchema(Schema):
    stale = fields.Integer(metadata={"description": "deliveries found in doubt"})
    lookup_failed = fields.Integer()


def reconcile_deliveries(params: commands.NoParams, ctx: commands.Context) -> dict[str, Any]:
    rt = runtime(ctx.env)

    def submit_chunk(kind: str, chunk: dict[str, Any], scope: str) -> None:
        commands.submit(ctx.session, kind, chunk, enqueue=rt.enqueue, scope=scope,
                        key=f"reconcile:{ctx.job.id}:{chunk['campaign_id']}", requested_by=ctx.job.requested_by)

    return reconcile.reconcile(rt, submit_chunk=submit_chunk)


commands.declare(
    commands.Command(
        kind=sending.KIND_START, params=StartCampaignSchema, handler=start_campaign, queue="bulk",
        permission=("campaigns", "update"), result=StartCampaignResultSchema,
        description="Start a campaign: materialise its audience into campaigns.send_chunk jobs.",
        example={"campaign_id": "00000000-0000-0000-0000-000000000001"}),
    commands.Command(
        kind=sending.KIND_CHUNK, params=SendChunkSchema, handler=send_chunk, queue="bulk",
        permission=("campaigns", "update"), result=SendChunkResultSchema, after=after_chunk,
        description="Send one chunk of a campaign's deliveries (a range of customer ids).",
        example={"campaign_id": "00000000-0000-0000-0000-000000000001",
                 "after": "00000000-0000-0000-0000-000000000000", "upto": "ffffffff-ffff-ffff-ffff-ffffffffffff"}),
    commands.Command(
        kind="campaigns.start_due", params=commands.NoParamsSchema, handler=start_due, queue="bulk",
        permission=("campaigns", "update"), result=StartDueResultSchema,
        description="Start due campaigns, end expired ones, complete finished ones (every minute)."),
    commands.Command(
        kind="campaigns.reconcile", params=commands.NoParamsSchema, handler=reconcile_deliveries, queue="bulk",
        permission=("campaigns", "update"), result=ReconcileResultSchema,
        description="Settle deliveries whose outcome is in doubt; resend what was never sent."),
)
