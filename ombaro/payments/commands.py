"""The commands of payments (ombaro/payments.py): apply a recorded provider event, and ask the
provider for a recorded refund (docs/settlements.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields

from ombaro import commands, payments
from ombaro.models.settlements import WebhookEvent
from ombaro.payments import webhooks as payment_webhooks
from ombaro.providers import payment_provider


@dataclass(frozen=True)
class ApplyWebhook(commands.Params):
    webhook_event_id: uuid.UUID


class ApplyWebhookSchema(commands.ParamsSchema):
    model = ApplyWebhook
    webhook_event_id = fields.UUID(required=True, metadata={"description": "the recorded event (webhook_events)"})


class ApplyWebhookResultSchema(Schema):
    event = fields.String(metadata={"description": "the provider's event id"})
    type = fields.String(metadata={"description": "the provider's event type, e.g. payment.captured"})
    outcome = fields.String(metadata={"description": "what applying it did"})


def apply_webhook(params: ApplyWebhook, ctx: commands.Context) -> dict[str, Any]:
    event = ctx.session.get_one(WebhookEvent, params.webhook_event_id, with_for_update=True)
    outcome = payment_webhooks.handle_event(ctx.session, event)
    return {"event": event.event_id, "type": event.event_type, "outcome": outcome}


@dataclass(frozen=True)
class SendRefund(commands.Params):
    refund_id: uuid.UUID


class SendRefundSchema(commands.ParamsSchema):
    model = SendRefund
    refund_id = fields.UUID(required=True)


class SendRefundResultSchema(Schema):
    refund_id = fields.UUID()
    status = fields.String(metadata={"description": "the refund's status after asking the provider"})


def send_refund(params: SendRefund, ctx: commands.Context) -> dict[str, Any]:
    status = payments.send_refund(ctx.session, payment_provider(ctx.env.settings), params.refund_id,
                                  look_first=ctx.job.attempts > 1)
    return {"refund_id": str(params.refund_id), "status": status}


commands.declare(
    commands.Command(
        kind="payments.webhook", params=ApplyWebhookSchema, handler=apply_webhook, queue="bulk",
        permission=("payments", "update"), result=ApplyWebhookResultSchema,
        description="Apply one recorded Razorpay event.",
        example={"webhook_event_id": "00000000-0000-0000-0000-000000000001"}),
    commands.Command(
        kind="payments.refund", params=SendRefundSchema, handler=send_refund, queue="bulk",
        permission=("payments", "update"), result=SendRefundResultSchema,
        description="Ask the provider for a recorded refund (looked up first when retried).",
        example={"refund_id": "00000000-0000-0000-0000-000000000002"}),
)
