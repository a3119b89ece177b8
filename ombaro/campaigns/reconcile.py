"""The `campaigns.reconcile` job: deliveries in doubt, campaigns' and booking notifications' alike,
resolved by the messaging runtime's rule (ombaro/messaging/reconcile.py). This module knows how
to compose each kind of message again for a provider look-up, and hands campaign deliveries that
must be sent once more to a chunk job (booking notifications are picked up by the next
`notifications.dispatch`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text

from ombaro import messaging, notifications
from ombaro.campaigns.content import CampaignComposer
from ombaro.campaigns.sending import KIND_CHUNK, scope
from ombaro.messaging import Recipient, Runtime
from ombaro.providers.channels import Message


def compose(conn: Connection, row: Mapping[str, Any], recipient: Recipient) -> Message:
    """The message a delivery carried: its campaign's content, or its booking event's template."""
    if row["campaign_id"] is None:
        return notifications.compose(conn, row["event_id"], recipient)
    campaign = conn.execute(text("SELECT type, content FROM campaigns WHERE id = :c"),
                            {"c": row["campaign_id"]}).one()
    return CampaignComposer(row["campaign_id"], campaign[0], campaign[1] or {}).compose(recipient, None)


def reconcile(rt: Runtime, *, stale_after: float = messaging.STALE_SENDING_SECONDS, grace: float | None = None,
              give_up_after: float = messaging.GIVE_UP_SECONDS, limit: int = 500,
              submit_chunk: Any = None) -> dict[str, int]:
    counts, absent = messaging.reconcile(rt, compose=compose, stale_after=stale_after, grace=grace,
                                         give_up_after=give_up_after, limit=limit)
    # Campaign deliveries sent again need a chunk job over their customers.
    by_campaign: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in absent:
        if row["campaign_id"] is not None:
            by_campaign.setdefault(row["campaign_id"], []).append(row["user_id"])
    for campaign_id, users in by_campaign.items():
        params = {"campaign_id": str(campaign_id), "after": str(uuid.UUID(int=min(u.int for u in users) - 1)),
                  "upto": str(max(users, key=lambda u: u.int)), "materialize": False}
        if submit_chunk is not None:
            submit_chunk(KIND_CHUNK, params, scope(campaign_id))
    return dict(counts)
