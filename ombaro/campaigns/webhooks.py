"""Delivery status from the providers' webhooks, applied once and never backwards.

Each event is recorded in `messaging_webhook_events` under the provider's event id first; an
event seen before changes nothing. A status only moves forward:

    pending/sending/unknown -> sent -> delivered -> opened -> clicked
    pending/sending/unknown/sent -> bounced | failed

so a late `delivered` never undoes `opened`, and nothing returns to `sent`. The timestamp of each
stage is kept even when the status does not move (an `opened` arriving first, then `delivered`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from ombaro.campaigns.unsubscribe import opt_out

EARLY = ("pending", "sending", "unknown")
MOVES_FROM: dict[str, tuple[str, ...]] = {
    "sent": EARLY,
    "delivered": (*EARLY, "sent"),
    "opened": (*EARLY, "sent", "delivered"),
    "clicked": (*EARLY, "sent", "delivered", "opened"),
    "bounced": (*EARLY, "sent"),
    "failed": (*EARLY, "sent"),
}
STAMP = {"delivered": "delivered_at", "opened": "opened_at", "clicked": "clicked_at", "bounced": "failed_at",
         "failed": "failed_at"}
ORDER = ("sent", "delivered", "opened", "clicked", "bounced", "failed")

SENDGRID_STATUS = {"processed": "sent", "delivered": "delivered", "open": "opened", "click": "clicked",
                   "bounce": "bounced", "dropped": "failed"}
SENDGRID_OPT_OUTS = ("unsubscribe", "group_unsubscribe", "spamreport")
TWILIO_STATUS = {"sent": "sent", "delivered": "delivered", "read": "opened", "undelivered": "failed",
                 "failed": "failed"}
STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit"}


@dataclass(frozen=True)
class StatusEvent:
    delivery_id: int | None
    provider_message_id: str | None
    status: str
    at: dt.datetime
    error: str | None = None


def fresh(conn: Connection, provider: str, event_ids: Sequence[str]) -> set[str]:
    """The event ids not seen before (and now recorded as seen)."""
    if not event_ids:
        return set()
    rows = conn.execute(text(
        "INSERT INTO messaging_webhook_events (provider, event_id) "
        "SELECT :provider, unnest(CAST(:ids AS text[])) "
        "ON CONFLICT (provider, event_id) DO NOTHING RETURNING event_id"),
        {"provider": provider, "ids": list(dict.fromkeys(event_ids))}).scalars().all()
    return set(rows)


def apply(conn: Connection, events: Iterable[StatusEvent]) -> int:
    """Move deliveries forward; returns how many rows changed status."""
    pending = list(events)
    by_sid = [e.provider_message_id for e in pending if e.delivery_id is None and e.provider_message_id]
    resolved: dict[str, int] = {}
    if by_sid:
        resolved = dict(conn.execute(text(
            "SELECT provider_message_id, id FROM message_deliveries "
            "WHERE provider_message_id = ANY(CAST(:sids AS text[]))"), {"sids": by_sid}).tuples().all())
    moved = 0
    for status in ORDER:  # in order of progress, so several events of one delivery in a batch all land
        batch = [(e.delivery_id or resolved.get(e.provider_message_id or ""), e) for e in pending if e.status == status]
        batch = [(i, e) for i, e in batch if i]
        if not batch:
            continue
        stamp = STAMP.get(status)
        stamp_sql = f"{stamp} = coalesce(d.{stamp}, v.at), " if stamp else ""
        sent_sql = "sent_at = coalesce(d.sent_at, v.at), " if status not in ("bounced", "failed") else ""
        changed = conn.execute(text(
            "UPDATE message_deliveries AS d SET "
            "status = CASE WHEN d.status = ANY(CAST(:from_ AS text[])) THEN :to ELSE d.status END, "
            f"{stamp_sql}{sent_sql}"
            "error = CASE WHEN :to IN ('bounced', 'failed') AND d.status = ANY(CAST(:from_ AS text[])) "
            "    THEN coalesce(v.error, d.error) ELSE d.error END, "
            "provider_message_id = coalesce(d.provider_message_id, v.pid), updated_at = now() "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:pids AS text[]), CAST(:ats AS timestamptz[]), "
            "            CAST(:errors AS text[])) AS v(id, pid, at, error) "
            "WHERE d.id = v.id RETURNING d.status"),
            {"from_": list(MOVES_FROM[status]), "to": status, "ids": [i for i, _ in batch],
             "pids": [e.provider_message_id for _, e in batch], "ats": [e.at for _, e in batch],
             "errors": [e.error for _, e in batch]}).scalars().all()
        moved += sum(1 for s in changed if s == status)
    return moved


# --- SendGrid's Event Webhook -------------------------------------------------------------------------

LATEST_TIMESTAMP = 32503680000  # 3000-01-01: beyond it a "Unix time" is not one (and would overflow)


def unix_time(value: Any) -> int | None:
    """Seconds since the epoch as SendGrid writes them (an integer, or its digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        return None
    return seconds if 0 <= seconds < LATEST_TIMESTAMP else None


def signature_age_problem(timestamp: str, *, now: dt.datetime, max_age_seconds: int) -> str | None:
    """Why a signed request's timestamp is refused (not a Unix time, too old, too far ahead), or None.
    The signature covers the timestamp, so a fresh one proves the request was signed just now."""
    seconds = unix_time(timestamp)
    if seconds is None:
        return "is not a Unix time in seconds"
    age = now.timestamp() - seconds
    if age > max_age_seconds:
        return f"is {int(age)} seconds old; requests older than {max_age_seconds} seconds are refused"
    if -age > max_age_seconds:
        return f"is {int(-age)} seconds in the future; more than {max_age_seconds} seconds ahead is refused"
    return None


def sendgrid_event_errors(events: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Field errors of a verified batch, checked before any of it is applied (a bad batch changes nothing)."""
    errors: dict[str, list[str]] = {}
    for index, event in enumerate(events):
        if event.get("timestamp") is not None and unix_time(event["timestamp"]) is None:
            errors[f"[{index}].timestamp"] = ["not a Unix time in seconds"]
    return errors


def sendgrid_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Apply a verified Event Webhook POST (a JSON array of events)."""
    keyed = []
    for event in events:
        key = str(event.get("sg_event_id") or _digest(event))
        keyed.append((key, event))
    new = fresh(conn, "sendgrid", [k for k, _ in keyed])
    updates, opt_outs, ignored = [], [], 0
    for key, event in keyed:
        if key not in new:
            continue
        delivery = _int(event.get("delivery_id"))
        seconds = unix_time(event.get("timestamp"))
        at = dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds else dt.datetime.now(dt.UTC)
        kind = str(event.get("event") or "")
        message_id = str(event.get("sg_message_id") or "").split(".")[0] or None
        if kind in SENDGRID_STATUS:
            error = event.get("reason") or event.get("response") if kind in ("bounce", "dropped") else None
            updates.append(StatusEvent(delivery, message_id if delivery is None else None, SENDGRID_STATUS[kind],
                                       at, str(error)[:500] if error else None))
        elif kind in SENDGRID_OPT_OUTS and delivery is not None:
            opt_outs.append(delivery)
        else:
            ignored += 1
    moved = apply(conn, updates)
    for delivery in opt_outs:  # the recipient unsubscribed or marked it spam through the mail client
        user = conn.execute(text("SELECT user_id FROM message_deliveries WHERE id = :d"), {"d": delivery}).scalar()
        if user is not None:
            opt_out(conn, user, "email")
    return {"received": len(events), "duplicates": len(keyed) - len(new), "moved": moved, "opted_out": len(opt_outs),
            "ignored": ignored}


# --- Twilio's status callback and inbound messages ----------------------------------------------------

def twilio_event(conn: Connection, params: Mapping[str, str], *, ref: str | None) -> dict[str, int]:
    """Apply one verified Twilio request: a message status callback, or an inbound STOP.

    De-duplicated on what Twilio signed (the parameters and our `ref` in the URL), never on an
    unsigned header: a replay with a new I-Twilio-Idempotency-Token is the same event."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if not fresh(conn, "twilio", [signed_content_key(params, ref)]):
        return {"duplicates": 1, "moved": 0, "opted_out": 0}
    if status == "received" or params.get("OptOutType"):
        body = (params.get("Body") or "").strip().lower()
        if params.get("OptOutType", "").upper() == "STOP" or body in STOP_WORDS:
            return {"duplicates": 0, "moved": 0, "opted_out": _opt_out_number(conn, params.get("From") or "")}
        return {"duplicates": 0, "moved": 0, "opted_out": 0}
    mapped = TWILIO_STATUS.get(status)
    if mapped is None:  # queued, accepted, sending: nothing to record
        return {"duplicates": 0, "moved": 0, "opted_out": 0}
    error = f"Twilio error {params['ErrorCode']}" if params.get("ErrorCode") else None
    moved = apply(conn, [StatusEvent(_int(ref), sid or None, mapped, dt.datetime.now(dt.UTC), error)])
    return {"duplicates": 0, "moved": moved, "opted_out": 0}


def _opt_out_number(conn: Connection, address: str) -> int:
    channel = "whatsapp" if address.startswith("whatsapp:") else "sms"
    number = address.removeprefix("whatsapp:")
    users = conn.execute(text("SELECT id FROM user_profiles WHERE mobile = :m"), {"m": number}).scalars().all()
    return sum(opt_out(conn, user, channel) for user in users)


def signed_content_key(params: Mapping[str, str], ref: str | None) -> str:
    """A digest of a Twilio request's signed content: its POST parameters and the URL's `ref`."""
    canonical = json.dumps({"ref": ref, "params": sorted(params.items())}, separators=(",", ":"))
    return "signed:" + hashlib.sha256(canonical.encode()).hexdigest()


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if value is not None and str(value).isdigit() else None
    except ValueError:
        return None


def _digest(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()
