"""The development outbox: the messages that would have gone to SendGrid, Twilio or FCM when no
provider is configured. Row-level security shows a user their own; the IT desk and the super
admin see all."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from ombaro.models.campaigns import CHANNELS
from ombaro.providers import outbox
from web.auth import requires
from web.extension import db_session
from web.sanitize import Blueprint
from web.schemas import BIGINT_MAX, Integer

blp = Blueprint("outbox", __name__, url_prefix="/api/v1/outbox", description="Development outbox")


class OutboxMessageSchema(Schema):
    id = fields.Integer()
    channel = fields.String()
    recipient = fields.String()
    user_id = fields.UUID(allow_none=True)
    delivery_id = fields.Integer(allow_none=True)
    subject = fields.String(allow_none=True)
    body = fields.String()
    headers = fields.Dict()
    data = fields.Dict()
    created_at = fields.DateTime()


class OutboxQuerySchema(Schema):
    channel = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), load_default=list)
    recipient = fields.String(load_default=None, validate=validate.Length(max=320))
    before_id = Integer(load_default=None, validate=validate.Range(min=1, max=BIGINT_MAX),
                        metadata={"description": "paging: ids below this"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=500))


@blp.get("")
@requires("notifications", "read")
@blp.arguments(OutboxQuerySchema, location="query", as_kwargs=True)
@blp.response(200, OutboxMessageSchema(many=True))
def list_outbox(channel: list[str], recipient: str | None, before_id: int | None, limit: int) -> Any:
    """Messages stored by the outbox, newest first."""
    return outbox.list_messages(db_session(), channels=channel, recipient=recipient, before_id=before_id,
                                limit=limit)
