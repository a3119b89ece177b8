"""Campaigns: marketing creates, a director approves (within budget), marketing sends, pauses,
resumes or cancels; audience preview with recipients and cost per channel; metrics.

Audience counts and metrics are computed on a service session acting as the workers' role: the
audience reads bookings and profiles, and conversions read bookings, which marketing's own role may
not read row by row. The campaign itself is always loaded first through the caller's session, so
row-level security decides whether the caller may see it; only counts leave the service session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from flask import url_for
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from ombaro.campaigns import lifecycle, metrics
from ombaro.commands import Submitted
from ombaro.db import WORKER_ROLE, act_as
from ombaro.models.customers import MEMBERSHIP_TIERS
from ombaro.models.marketing import CAMPAIGN_STATUSES, CAMPAIGN_TYPES
from web.auth import current_user, current_user_id, requires
from web.commanding import idempotency_key
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import Integer, JobSchema, Money, MoneyAmount

blp = Blueprint("campaigns", __name__, url_prefix="/api/v1/campaigns", description="Marketing campaigns")



class RangeSchema(Schema):
    min = Integer(validate=validate.Range(min=0, max=36500), allow_none=True)
    max = Integer(validate=validate.Range(min=0, max=36500), allow_none=True)


class TargetAudienceSchema(Schema):
    tier = fields.List(fields.String(validate=validate.OneOf(MEMBERSHIP_TIERS)))
    city = fields.List(fields.String(validate=validate.Length(min=1, max=100)))
    age_range = fields.Nested(RangeSchema)
    days_since_last_booking = fields.Nested(RangeSchema)
    last_booking_days = Integer(validate=validate.Range(min=0, max=36500),
                                       metadata={"description": "same as days_since_last_booking.min"})
    customer_ids = fields.List(fields.UUID(), validate=validate.Length(max=10_000))


class ChannelContentSchema(Schema):
    """One channel's message; which fields each channel needs is checked with the campaign's type
    (ombaro/campaigns/content.py): email subject and body, SMS and WhatsApp body, push and in-app
    title and body."""

    subject = fields.String(validate=validate.Length(max=1000))
    title = fields.String(validate=validate.Length(max=1000))
    body = fields.String(validate=validate.Length(max=100_000))
    html = fields.String(validate=validate.Length(max=500_000))
    data = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                       values=fields.String(validate=validate.Length(max=1000)),
                       metadata={"description": "push and in-app only: names to text, delivered with the message"})


class ContentSchema(ChannelContentSchema):
    """Per channel; the flat fields (the older form) are the content of a single-channel campaign."""

    email = fields.Nested(ChannelContentSchema)
    sms = fields.Nested(ChannelContentSchema)
    whatsapp = fields.Nested(ChannelContentSchema)
    push = fields.Nested(ChannelContentSchema)
    in_app = fields.Nested(ChannelContentSchema)


class CampaignCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_TYPES))
    content = fields.Nested(ContentSchema, required=True, metadata={
        "description": 'per channel: {"email": {"subject", "body", "html"?}, "sms": {"body"}, "whatsapp": {"body"}, '
                       '"push": {"title", "body", "data"?}, "in_app": {"title", "body", "data"?}}; placeholders '
                       "$name, $first_name, $tier, $city"})
    target_audience = fields.Nested(TargetAudienceSchema, load_default=dict)
    start_date = fields.AwareDateTime(load_default=None, allow_none=True)
    end_date = fields.AwareDateTime(load_default=None, allow_none=True)
    budget = Money(required=True)


class PreviewRequestSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_TYPES))
    content = fields.Nested(ContentSchema, required=True)
    target_audience = fields.Nested(TargetAudienceSchema, load_default=dict)


class CampaignSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    type = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(CAMPAIGN_STATUSES)})
    target_audience = fields.Dict(allow_none=True)
    content = fields.Dict()
    start_date = fields.DateTime(allow_none=True)
    end_date = fields.DateTime(allow_none=True)
    budget = MoneyAmount(allow_none=True)
    created_by = fields.UUID()
    approved_by = fields.UUID(allow_none=True)
    metrics = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CampaignQuerySchema(Schema):
    status = fields.List(fields.String(validate=validate.OneOf(CAMPAIGN_STATUSES)), load_default=list)
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))


COUNT_FLOOR = ('a number, or "fewer than 10" for a small audience (never an exact small count: a preview must '
               'not tell whether a chosen customer matches, docs/security.md)')


class ChannelEstimateSchema(Schema):
    recipients = fields.Raw(metadata={"description": f"of the filters' audience: {COUNT_FLOOR}",
                                      "oneOf": [{"type": "integer"}, {"type": "string"}]})
    unit_cost = fields.String()
    cost = fields.String(metadata={"description": "(recipients, or 9 when fewer than 10, + listed) x unit cost"})


class PreviewSchema(Schema):
    customers = fields.Raw(metadata={"description": f"customers the filters reach on at least one channel: "
                                                    f"{COUNT_FLOOR}",
                                     "oneOf": [{"type": "integer"}, {"type": "string"}]})
    listed = fields.Integer(metadata={"description": "explicit customer_ids, not looked up: each is costed as "
                                                     "reachable on every channel"})
    channels = fields.Dict(keys=fields.String(), values=fields.Nested(ChannelEstimateSchema))
    total_cost = fields.String()
    budget = fields.String(allow_none=True)
    within_budget = fields.Boolean(allow_none=True)


class MetricsSchema(Schema):
    campaign_id = fields.UUID()
    status = fields.String()
    sent = fields.Integer()
    delivered = fields.Integer()
    opened = fields.Integer()
    clicked = fields.Integer()
    converted = fields.Integer()
    failed = fields.Integer()
    bounced = fields.Integer()
    skipped = fields.Integer()
    in_flight = fields.Integer()
    unsubscribed = fields.Integer()
    total = fields.Integer()
    by_channel = fields.Dict()
    attribution_days = fields.Integer()
    computed_at = fields.String()


@contextmanager
def worker_session(purpose: str) -> Iterator[Session]:
    """The service session, acting as the workers' role for aggregate reads (see module doc)."""
    user = current_user()
    with Ombaro.get().sessions() as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": str(user.id) if user.id else None,
                                      "purpose": purpose})
        yield session


def _preview(campaign_type: str | None, content: Mapping[str, Any], target: Mapping[str, Any] | None,
             budget: Any = None) -> dict[str, Any]:
    settings = Ombaro.get().settings
    lifecycle.validate(campaign_type or "", content, target)
    with worker_session("campaigns.preview") as session:
        channels, found = lifecycle.counts(session, campaign_type, content, target, zone=settings.timezone)
    figures = lifecycle.estimate(channels, found, settings.messaging.channel_costs).as_dict()
    figures["budget"] = str(budget) if budget is not None else None
    figures["within_budget"] = None if budget is None else Decimal(figures["total_cost"]) <= budget
    return figures


def _job_answer(submitted: Submitted) -> tuple[Any, int, dict[str, str]]:
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers


@blp.get("")
@requires("campaigns", "read")
@blp.arguments(CampaignQuerySchema, location="query", as_kwargs=True)
@blp.response(200, CampaignSchema(many=True))
def list_campaigns(status: list[str], limit: int) -> Any:
    """Campaigns, newest first."""
    return lifecycle.list_campaigns(db_session(), statuses=status, limit=limit)


@blp.post("")
@requires("campaigns", "create")
@blp.arguments(CampaignCreateSchema)
@blp.response(201, CampaignSchema)
def create_campaign(data: dict[str, Any]) -> Any:
    """A draft campaign; it sends nothing until a director approves it."""
    session = db_session()
    with session.begin():
        campaign = lifecycle.create(session, name=data["name"], type=data["type"], body=data["content"],
                                    target_audience=_plain(data["target_audience"]), start_date=data["start_date"],
                                    end_date=data["end_date"], budget=data["budget"], created_by=current_user_id())
    return campaign


@blp.post("/preview")
@requires("campaigns", "read")
@blp.arguments(PreviewRequestSchema)
@blp.response(200, PreviewSchema)
def preview(data: dict[str, Any]) -> Any:
    """Recipients and cost per channel of an audience and content, before saving a campaign."""
    return _preview(data["type"], data["content"], _plain(data["target_audience"]))


@blp.get("/<uuid:campaign_id>")
@requires("campaigns", "read")
@blp.response(200, CampaignSchema)
def get_campaign(campaign_id: uuid.UUID) -> Any:
    return lifecycle.get(db_session(), campaign_id)


@blp.get("/<uuid:campaign_id>/audience")
@requires("campaigns", "read")
@blp.response(200, PreviewSchema)
def audience_preview(campaign_id: uuid.UUID) -> Any:
    """Recipients per channel as of now (opt-outs and suspended accounts left out) and the cost
    against the campaign's budget."""
    campaign = lifecycle.get(db_session(), campaign_id)
    return _preview(campaign.type, campaign.content or {}, campaign.target_audience, campaign.budget)


@blp.post("/<uuid:campaign_id>/approve")
@requires("campaigns", "approve")
@blp.response(200, CampaignSchema)
def approve(campaign_id: uuid.UUID) -> Any:
    """Approve a draft: refused (422, with the figures) when audience x unit cost exceeds the budget."""
    settings = Ombaro.get().settings
    session = db_session()
    with session.begin():
        campaign = lifecycle.get(session, campaign_id, for_update=True)
        lifecycle.validate(campaign.type or "", campaign.content or {}, campaign.target_audience)
        with worker_session("campaigns.approve") as counting:
            channels, found = lifecycle.counts(counting, campaign.type, campaign.content or {},
                                               campaign.target_audience, zone=settings.timezone)
        figures = lifecycle.estimate(channels, found, settings.messaging.channel_costs)
        lifecycle.approve(session, campaign, figures, approver=current_user_id())
    return campaign


@blp.post("/<uuid:campaign_id>/send")
@requires("campaigns", "update")
@idempotent
@blp.response(202, JobSchema)
def send_now(campaign_id: uuid.UUID) -> Any:
    """Start an approved campaign now (otherwise it starts at its start_date)."""
    return _start(campaign_id, lifecycle.send_now)


@blp.post("/<uuid:campaign_id>/resume")
@requires("campaigns", "update")
@idempotent
@blp.response(202, JobSchema)
def resume(campaign_id: uuid.UUID) -> Any:
    """Resume a paused campaign; nothing already sent is sent again."""
    return _start(campaign_id, lifecycle.resume)


def _start(campaign_id: uuid.UUID, action: Any) -> Any:
    user, key, session = current_user(), idempotency_key(), db_session()
    with session.begin():
        campaign = lifecycle.get(session, campaign_id, for_update=True)
        submitted = action(session, campaign, enqueue=Ombaro.get().enqueue, key=key,
                           idempotency_scope=user.idempotency_scope, requested_by=user.id)
    return _job_answer(submitted)


@blp.post("/<uuid:campaign_id>/pause")
@requires("campaigns", "update")
@blp.response(200, CampaignSchema)
def pause(campaign_id: uuid.UUID) -> Any:
    """Stop sending; what is pending waits for resume."""
    session = db_session()
    with session.begin():
        campaign = lifecycle.pause(session, lifecycle.get(session, campaign_id, for_update=True))
    return campaign


@blp.post("/<uuid:campaign_id>/cancel")
@requires("campaigns", "update")
@blp.response(200, CampaignSchema)
def cancel(campaign_id: uuid.UUID) -> Any:
    """Stop for good; pending deliveries are skipped."""
    session = db_session()
    with session.begin():
        campaign = lifecycle.cancel(session, lifecycle.get(session, campaign_id, for_update=True))
    return campaign


@blp.get("/<uuid:campaign_id>/metrics")
@requires("campaigns", "read")
@blp.response(200, MetricsSchema)
def campaign_metrics(campaign_id: uuid.UUID) -> Any:
    """Sent, delivered, opened, clicked, converted and failed, counted from the deliveries now."""
    campaign = lifecycle.get(db_session(), campaign_id)
    days = Ombaro.get().settings.messaging.attribution_days
    with worker_session("campaigns.metrics") as session:
        figures = metrics.compute(session.connection(), campaign_id, attribution_days=days)
    return {"campaign_id": campaign.id, "status": campaign.status, **figures}


def _plain(value: Any) -> Any:
    """Marshmallow's loaded audience (UUIDs) as JSON-ready values for storage."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
