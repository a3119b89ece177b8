"""A campaign's metrics, counted from its deliveries, and the bookings it converted.

- sent: accepted by the provider (`sent_at` set); delivered / opened / clicked: the furthest status
  each delivery reached (an open implies delivery even when the delivery event never came);
  failed: refused, bounced, or given up; skipped: opted out at send time, over the weekly cap,
  cancelled or expired; in_flight: pending, being sent, or outcome unknown.
- converted: bookings (not cancelled) made by a recipient within the attribution window after the
  campaign reached them, counted once per booking, last touch: a booking goes to the campaign
  whose message reached the customer last before it (any channel).

`campaigns.metrics` holds the figures as of `computed_at`; they are refreshed by the chunk jobs (at
most every few seconds), on completion and by the minutely tick while they can still change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from ombaro.messaging import Runtime

FIGURES = ("sent", "delivered", "opened", "clicked", "failed", "bounced", "skipped", "in_flight", "unsubscribed",
           "total")
THROTTLE_SECONDS = 10

COUNTS_SQL = """
SELECT channel,
       count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
       count(*) FILTER (WHERE status IN ('delivered', 'opened', 'clicked')) AS delivered,
       count(*) FILTER (WHERE status IN ('opened', 'clicked')) AS opened,
       count(*) FILTER (WHERE status = 'clicked') AS clicked,
       count(*) FILTER (WHERE status IN ('failed', 'bounced')) AS failed,
       count(*) FILTER (WHERE status = 'bounced') AS bounced,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status IN ('pending', 'sending', 'unknown')) AS in_flight,
       count(*) FILTER (WHERE unsubscribed_at IS NOT NULL) AS unsubscribed,
       count(*) AS total
FROM message_deliveries WHERE campaign_id = :c GROUP BY channel ORDER BY channel
"""

CONVERSIONS_SQL = """
SELECT count(DISTINCT b.id)
FROM message_deliveries AS d
JOIN bookings AS b ON b.customer_id = d.user_id AND b.created_at >= d.sent_at
                  AND b.created_at < d.sent_at + make_interval(days => :days)
WHERE d.campaign_id = :c AND d.sent_at IS NOT NULL AND b.status <> 'cancelled'
  AND NOT EXISTS (
      SELECT 1 FROM message_deliveries AS later
      WHERE later.user_id = b.customer_id AND later.campaign_id IS NOT NULL AND later.campaign_id <> :c
        AND later.sent_at > d.sent_at AND later.sent_at <= b.created_at)
"""


def compute(conn: Connection, campaign_id: uuid.UUID, *, attribution_days: int) -> dict[str, Any]:
    by_channel = {row["channel"]: {k: int(row[k]) for k in FIGURES}
                  for row in conn.execute(text(COUNTS_SQL), {"c": campaign_id}).mappings()}
    totals = {k: sum(figures[k] for figures in by_channel.values()) for k in FIGURES}
    converted = conn.execute(text(CONVERSIONS_SQL), {"c": campaign_id, "days": attribution_days}).scalar_one()
    return {**totals, "converted": int(converted), "by_channel": by_channel, "attribution_days": attribution_days,
            "computed_at": dt.datetime.now(dt.UTC).isoformat()}


def store(conn: Connection, campaign_id: uuid.UUID, figures: dict[str, Any]) -> None:
    # Merged: other keys (the approval's estimate) stay.
    conn.execute(text("UPDATE campaigns SET metrics = coalesce(metrics, '{}'::jsonb) || CAST(:m AS jsonb) "
                      "WHERE id = :c"),
                 {"m": _json(figures), "c": campaign_id})


def refresh(rt: Runtime, campaign_id: uuid.UUID) -> dict[str, Any]:
    with rt.tx() as conn:
        figures = compute(conn, campaign_id, attribution_days=rt.settings.messaging.attribution_days)
        store(conn, campaign_id, figures)
    return figures


def refresh_soon(rt: Runtime, campaign_id: uuid.UUID) -> bool:
    """Refresh unless some worker did within the last few seconds (many chunks finish together)."""
    if not rt.bucket.client.set(f"ombaro:campaign-metrics:{campaign_id}", 1, nx=True, ex=THROTTLE_SECONDS):
        return False
    refresh(rt, campaign_id)
    return True


def refresh_recent(rt: Runtime, limit: int = 50) -> int:
    """Campaigns whose figures can still change: running, paused, or completed within the
    attribution window (conversions keep arriving)."""
    with rt.tx() as conn:
        ids = conn.execute(text(
            "SELECT c.id FROM campaigns AS c WHERE (c.status IN ('active', 'paused') OR (c.status = 'completed' "
            "AND c.updated_at > now() - make_interval(days => :days + 1))) "
            "AND EXISTS (SELECT 1 FROM message_deliveries AS d WHERE d.campaign_id = c.id) "
            "ORDER BY c.updated_at DESC LIMIT :limit"),
            {"days": rt.settings.messaging.attribution_days, "limit": limit}).scalars().all()
    for campaign_id in ids:
        refresh(rt, campaign_id)
    return len(ids)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
