"""The commands of diagnostics (ombaro/diagnostics.py): `system.ping`, the pipeline check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import commands, diagnostics


@dataclass(frozen=True)
class Ping(commands.Params):
    steps: int | None = None
    pause_seconds: float | None = None
    fail: str | None = None
    echo: Any = None


class PingSchema(commands.ParamsSchema):
    model = Ping
    steps = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000),
                           metadata={"description": "progress steps (default 1)"})
    pause_seconds = fields.Float(validate=validate.Range(min=0, max=600), metadata={"description": "per step"})
    fail = fields.String(validate=validate.OneOf(("transient", "permanent")),
                         metadata={"description": "fail on purpose: retried after a back-off, or at once"})
    echo = fields.Raw(allow_none=True, metadata={"description": "returned as it was given"})


class PingResultSchema(Schema):
    pong = fields.Boolean()
    worker = fields.String(metadata={"description": "host:pid of the worker process that ran it"})
    database_time = fields.DateTime()
    echo = fields.Raw(allow_none=True)


def ping(params: Ping, ctx: commands.Context) -> dict[str, Any]:
    return diagnostics.ping(ctx.session, {k: v for k, v in vars(params).items() if v is not None},
                            progress=ctx.progress)


commands.declare(commands.Command(
    kind="system.ping", params=PingSchema, handler=ping, queue="maintenance", permission=("jobs", "create"),
    result=PingResultSchema, description="Exercise the whole pipeline (API, broker, worker, database).",
    example={"steps": 2, "echo": "hello"}))
