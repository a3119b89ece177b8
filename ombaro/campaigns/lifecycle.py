"""A campaign's life as marketing and the directors drive it.

    draft --approve--> scheduled --start_date / send now--> active --(all sent)--> completed
                                                            active <--pause / resume--> paused
    draft, scheduled, active, paused --cancel--> cancelled;  active, paused --end_date--> completed

Approval is refused, with the figures, when the audience times each channel's unit cost exceeds
the budget (the spend guard). The functions run in the caller's transaction and never commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.campaigns import audience, content
from ombaro.campaigns.sending import submit_start
from ombaro.models.marketing import Campaign


class CampaignError(Exception):
    pass


class CampaignNotFound(CampaignError):
    pass


class InvalidCampaign(CampaignError):
    """The campaign as given cannot be sent (content, audience, dates, budget)."""


class InvalidTransition(CampaignError):
    """The campaign is not in a state that allows this (e.g. sending a draft)."""


class SpendExceeded(CampaignError):
    """The estimated spend is above the budget; carries the figures."""

    def __init__(self, estimate: audience.Estimate, budget: Decimal) -> None:
        lines = "; ".join(f"{ch}: {estimate.counts[ch]} x {estimate.unit_costs[ch]} = {cost}"
                          for ch, cost in estimate.costs.items())
        super().__init__(f"the audience would cost {estimate.total}, above the budget of {budget} ({lines})")
        self.estimate, self.budget = estimate, budget


def get(session: Session, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.scalars(query.with_for_update() if for_update else query).one_or_none()
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return campaign


def list_campaigns(session: Session, *, statuses: Sequence[str], limit: int) -> Sequence[Campaign]:
    """Campaigns newest first, in any of `statuses` (all when empty)."""
    query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id).limit(limit)
    if statuses:
        query = query.where(Campaign.status.in_(statuses))
    return session.scalars(query).all()


def validate(campaign_type: str, body: Mapping[str, Any], target_audience: Mapping[str, Any] | None) -> tuple[
        dict[str, dict[str, Any]], audience.Target]:
    try:
        channels = content.validate(campaign_type, body)
        target = audience.Target.parse(target_audience)
    except (content.InvalidContent, audience.InvalidTarget) as exc:
        raise InvalidCampaign(str(exc)) from exc
    return channels, target


def create(session: Session, *, name: str, type: str, body: Mapping[str, Any],
           target_audience: Mapping[str, Any] | None, start_date: dt.datetime | None, end_date: dt.datetime | None,
           budget: Decimal, created_by: uuid.UUID) -> Campaign:
    validate(type, body, target_audience)
    if start_date and end_date and end_date <= start_date:
        raise InvalidCampaign("end_date must be after start_date")
    if budget < 0:
        raise InvalidCampaign("budget must not be negative")
    _must_be_employee(session, created_by, "creator")
    campaign = Campaign(name=name, type=type, status="draft", content=dict(body),
                        target_audience=dict(target_audience or {}), start_date=start_date, end_date=end_date,
                        budget=budget, created_by=created_by, metrics={})
    session.add(campaign)
    session.flush()
    return campaign


def _must_be_employee(session: Session, user_id: uuid.UUID, who: str) -> None:
    # campaigns.created_by / approved_by reference employees(id) (the spec's schema).
    if session.execute(text("SELECT 1 FROM employees WHERE id = :id"), {"id": user_id}).first() is None:
        raise InvalidCampaign(f"the {who} has no employee record")


def counts(worker_session: Session, campaign_type: str | None, body: Mapping[str, Any],
           target_audience: Mapping[str, Any] | None, *, zone: str) -> tuple[list[str], audience.Counted]:
    """Recipients per channel, as a preview may count them (audience.preview_counts: explicit ids
    are listed, not looked up). Runs on a session acting as the workers' role: the audience reads
    bookings and profiles that marketing's own role may not read row by row; only counts leave."""
    channels = list(content.channels_of(campaign_type, body))
    target = audience.Target.parse(target_audience)
    now = worker_session.execute(text("SELECT now()")).scalar_one()
    found = audience.preview_counts(worker_session, target, channels, today=now.astimezone(_zone(zone)).date(),
                                    now=now)
    return channels, found


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def estimate(channels: list[str], found: audience.Counted, unit_costs: Mapping[str, Decimal]) -> audience.Estimate:
    """The figures shown and the spend guard's: small counts at their upper bound, listed ids added."""
    return audience.preview_estimate(found, unit_costs, channels)


def approve(session: Session, campaign: Campaign, figures: audience.Estimate, *, approver: uuid.UUID,
            now: dt.datetime | None = None) -> Campaign:
    """draft -> scheduled within the budget; `now` (for the end date) is the database's clock unless given."""
    if campaign.status != "draft":
        raise InvalidTransition(f"only a draft can be approved; this campaign is {campaign.status}")
    validate(campaign.type or "", campaign.content or {}, campaign.target_audience)
    if now is None:
        now = session.execute(text("SELECT now()")).scalar_one()
    if campaign.end_date and campaign.end_date <= now:
        raise InvalidCampaign("the campaign's end_date has passed")
    budget = campaign.budget if campaign.budget is not None else Decimal("0.00")
    if figures.total > budget:
        raise SpendExceeded(figures, budget)
    _must_be_employee(session, approver, "approver")
    campaign.status = "scheduled"
    campaign.approved_by = approver
    campaign.metrics = {**(campaign.metrics or {}), "estimate": figures.as_dict()}
    session.flush()
    return campaign


def send_now(session: Session, campaign: Campaign, *, enqueue: commands.Enqueue, key: str | None,
             idempotency_scope: str, requested_by: uuid.UUID | None) -> commands.Submitted:
    """Start an approved campaign now instead of at its start_date."""
    return _start(session, campaign, ("scheduled",), enqueue=enqueue, key=key, idempotency_scope=idempotency_scope,
                  requested_by=requested_by, verb="sent")


def resume(session: Session, campaign: Campaign, *, enqueue: commands.Enqueue, key: str | None,
           idempotency_scope: str, requested_by: uuid.UUID | None) -> commands.Submitted:
    """A paused campaign goes on: its audience is streamed again; deliveries already made are not
    repeated (their unique key), pending ones are sent."""
    return _start(session, campaign, ("paused",), enqueue=enqueue, key=key, idempotency_scope=idempotency_scope,
                  requested_by=requested_by, verb="resumed")


def _start(session: Session, campaign: Campaign, allowed: tuple[str, ...], *, enqueue: commands.Enqueue,
           key: str | None, idempotency_scope: str, requested_by: uuid.UUID | None,
           verb: str) -> commands.Submitted:
    # The request's key (if any) names the start job; a replayed request finds the same job.
    job_key = f"{idempotency_scope}:{key}" if key else f"{verb}:{uuid.uuid4()}"
    submitted = submit_start(session, enqueue, campaign.id, key=job_key, requested_by=requested_by)
    if not submitted.created:
        return submitted
    if campaign.status not in allowed:
        raise InvalidTransition(f"a {campaign.status} campaign cannot be {verb}")
    campaign.status = "active"
    session.flush()
    return submitted


def pause(session: Session, campaign: Campaign) -> Campaign:
    if campaign.status != "active":
        raise InvalidTransition(f"only an active campaign can be paused; this one is {campaign.status}")
    campaign.status = "paused"
    session.flush()
    return campaign


def cancel(session: Session, campaign: Campaign) -> Campaign:
    if campaign.status not in ("draft", "scheduled", "active", "paused"):
        raise InvalidTransition(f"a {campaign.status} campaign cannot be cancelled")
    campaign.status = "cancelled"
    session.flush()
    return campaign
