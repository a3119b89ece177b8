"""Deliveries whose outcome nobody recorded: the rule for a provider call that timed out.

A call that timed out after the request left, or a worker that died between the call and the
update, leaves a delivery whose fate is unknowable from our side. Such a delivery is never sent
again on a guess:

1. `sending` whose claimant is dead becomes `unknown`: a delivery records the job and attempt
   that claimed it (campaign chunks and booking notifications alike), and is in doubt as soon as
   that attempt no longer runs under a live lease (the worker's heartbeat stopped:
   docs/reliability.md). A delivery without a claimant (claimed before migration 0014, or by code
   that runs outside a job) is in doubt after `stale_after` (10 minutes; a claimed batch takes
   seconds). A timeout recorded it as `unknown` directly.
2. Where the provider can be asked, it is asked:
   - Twilio (SMS, WhatsApp): messages to the number since the attempt, with the same body. Found:
     `sent` with Twilio's sid. Not found `grace` after the attempt (30 s, and at least three
     provider timeouts: the call is over by then, its worker timed out or is dead): Twilio creates
     the message within the API call, so it was never accepted and the delivery is `pending` again
     (sent once more).
   - the outbox and in-app: their rows carry the delivery id; the same rule.
3. Where it cannot (SendGrid, FCM: no lookup by our id), the delivery waits for a status webhook,
   which moves it on (SendGrid's events carry `custom_args.delivery_id`). With no event
   `give_up_after` (1 hour) after the attempt it is `failed` ("outcome unknown"): at most once,
   never twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, text

from ombaro.messaging.delivery import Recipient, Runtime, fail, load_recipients, mark_sent
from ombaro.providers.channels import Message
from ombaro.providers.outbox import InAppNotifications, Outbox
from ombaro.providers.sms import TwilioMessages

log = logging.getLogger(__name__)

STALE_SENDING_SECONDS = 600  # deliveries without a claimant only
NOT_FOUND_GRACE_SECONDS = 30
GIVE_UP_SECONDS = 3600
# The attempt that claimed a delivery still runs, its worker's heartbeat renewing its lease.
CLAIMANT_ALIVE = ("EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = d.sending_job_id AND j.status = 'running' "
                  "AND j.attempts = d.sending_attempt AND j.lease_expires_at > now())")
WEBHOOK_EVENT_DAYS = 7  # SendGrid retries an event for 24 hours, Twilio for less

# The message a delivery carried, composed again from its row (id, channel, campaign_id,
# event_id, user_id, ...) to look it up at the provider: the owner of the delivery knows how.
Composer = Callable[[Connection, Mapping[str, Any], Recipient], Message]


def reconcile(rt: Runtime, *, compose: Composer, stale_after: float = STALE_SENDING_SECONDS,
              grace: float | None = None, give_up_after: float = GIVE_UP_SECONDS,
              limit: int = 500) -> tuple[Counter[str], list[dict[str, Any]]]:
    """One pass over the deliveries in doubt. Returns the counts and the rows put back to
    `pending` (sent once more by whoever sends their kind: a chunk job, the notification dispatch)."""
    counts: Counter[str] = Counter()
    if grace is None:
        grace = max(NOT_FOUND_GRACE_SECONDS, 3 * rt.settings.messaging.provider_timeout_seconds)
    with rt.tx() as conn:
        counts["stale"] = conn.execute(text(
            "UPDATE message_deliveries AS d SET status = 'unknown', "
            "error = coalesce(error, 'no outcome recorded: the worker stopped during the call'), updated_at = now() "
            "WHERE d.status = 'sending' AND CASE WHEN d.sending_job_id IS NULL "
            "    THEN d.sending_at < now() - make_interval(secs => :stale) "
            f"    ELSE NOT {CLAIMANT_ALIVE} END"),
            {"stale": stale_after}).rowcount or 0
        rows = conn.execute(text(
            "SELECT id, provider, channel, campaign_id, event_id, user_id, sending_at, now() AS now "
            "FROM message_deliveries WHERE status = 'unknown' ORDER BY sending_at NULLS FIRST LIMIT :limit"),
            {"limit": limit}).mappings().all()
    found: list[tuple[int, str | None, str]] = []  # id, provider id, status
    absent: list[dict[str, Any]] = []
    gave_up: list[tuple[int, str]] = []
    twilio_rows = []
    for row in rows:
        age = (row["now"] - row["sending_at"]).total_seconds() if row["sending_at"] else 1e9
        provider = row["provider"] or ""
        if provider == "outbox":
            stored = Outbox(rt.engine, row["channel"]).stored_refs([row["id"]])
            _sort(row, stored.get(row["id"]), "sent", age, grace, found, absent)
        elif provider == "in_app":
            stored = InAppNotifications(rt.engine).stored_refs([(row["id"], row["user_id"])])
            _sort(row, stored.get(row["id"]), "delivered", age, grace, found, absent)
        elif provider.startswith("twilio_") and isinstance(rt.channels.sender(row["channel"]), TwilioMessages):
            twilio_rows.append((row, age))
        elif age >= give_up_after:
            gave_up.append((row["id"], f"outcome unknown: {provider or 'the provider'} gave no answer and no status "
                                        "event came; not sent again (at most once)"))
    for row, age in twilio_rows:
        try:
            sid = _ask_twilio(rt, row, compose)
        except Exception as exc:  # the lookup itself failed: ask again at the next run
            log.warning("reconcile: Twilio lookup for delivery %s failed: %s", row["id"], exc)
            counts["lookup_failed"] += 1
            continue
        _sort(row, sid, "sent", age, grace, found, absent)
    with rt.tx() as conn:
        for status in ("sent", "delivered"):
            batch = [(i, pid) for i, pid, s in found if s == status]
            if batch:
                mark_sent(conn, batch, status=status)
        if absent:
            conn.execute(text(
                "UPDATE message_deliveries SET status = 'pending', next_attempt_at = now(), "
                "error = 'not accepted by the provider (checked); sent again', updated_at = now() "
                "WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'unknown'"), {"ids": [r["id"] for r in absent]})
        if gave_up:
            fail(conn, gave_up)
    counts.update(found=len(found), resend=len(absent), gave_up=len(gave_up))
    with rt.tx() as conn:  # providers stop retrying a webhook within days: older event ids can go
        counts["webhook_events_pruned"] = conn.execute(text(
            "DELETE FROM messaging_webhook_events WHERE id IN (SELECT id FROM messaging_webhook_events "
            "WHERE received_at < now() - make_interval(days => :days) LIMIT 10000)"),
            {"days": WEBHOOK_EVENT_DAYS}).rowcount or 0
    return counts, absent


def _sort(row: Any, provider_id: str | None, status: str, age: float, grace: float,
          found: list[tuple[int, str | None, str]], absent: list[dict[str, Any]]) -> None:
    if provider_id:
        found.append((row["id"], provider_id, status))
    elif age >= grace:
        absent.append(dict(row))


def _ask_twilio(rt: Runtime, row: Any, compose: Composer) -> str | None:
    sender = rt.channels.sender(row["channel"])
    assert isinstance(sender, TwilioMessages)
    with rt.tx() as conn:
        (loaded,) = load_recipients(conn, [row["id"]])
        known = set(conn.execute(text(
            "SELECT provider_message_id FROM message_deliveries WHERE user_id = :u AND provider_message_id IS NOT NULL "
            "AND id <> :id"), {"u": row["user_id"], "id": row["id"]}).scalars())
        message = compose(conn, row, loaded.recipient)
    if not loaded.recipient.mobile:
        return None
    since = row["sending_at"] or (row["now"] - dt.timedelta(days=1))
    return sender.find_sent(to=loaded.recipient.mobile, body=message.body, since=since, until=row["now"],
                            exclude=known)
