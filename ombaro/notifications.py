"""Transactional notifications: customers and therapists hear about their bookings through the
same channel layer as campaigns, on the channels each of them allows.

Events come from the domain, not from the code that changed it: triggers on `bookings`,
`therapist_assignments` and `payments` (migration 0007) write a `notification_events` row in the
same transaction as the status change (booking confirmed / cancelled, therapist assigned / arrived,
service started / completed, payment received, refund processed). Reminders are written by the
five-minutely scan, two hours before each confirmed booking. `notifications.dispatch` (every 30 s,
or at once through `request_dispatch`) turns each event into one delivery per recipient and
channel (unique per event, user and channel) and sends them with the claim / send / record steps
of the messaging runtime (ombaro/messaging/), so a redelivered job never notifies twice. A claim
names the job attempt making the call: a delivery whose worker died is in doubt as soon as that
attempt's lease is dead, and resolved at the next reconciliation (docs/reliability.md).

Channels: in-app always (the `notifications` row is the user's record); email, SMS and push unless
the user set them to false; WhatsApp only when set to true. Customers' choices are their
`communication_preferences`, other users' `user_profiles.preferences.notifications`. Quiet hours
and the marketing cap do not apply: these are the user's own bookings.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.commands import JobRef, Progress
from ombaro.messaging import (
    SMS_OPT_OUT,
    Claimant,
    Recipient,
    Runtime,
    load_recipients,
    mark_sent,
    take_tokens,
    transmit,
    unreachable,
)
from ombaro.models.support import Notification
from ombaro.providers.channels import Message

KIND_DISPATCH = "notifications.dispatch"
CHANNEL_ORDER = ("in_app", "push", "sms", "whatsapp", "email")
STALE_DAYS = 1  # events about bookings older than this are recorded, not sent (e.g. imported history)
TIME_BUDGET_SECONDS = 60

# (title, message) per event type and audience; str.format_map over our own fields only.
TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    ("booking_confirmed", "customer"): ("Booking confirmed",
                                        "Your booking {booking_number} on {date} at {time} is confirmed."),
    ("booking_cancelled", "customer"): ("Booking cancelled", "Your booking {booking_number} on {date} was cancelled."),
    ("booking_cancelled", "therapist"): ("Booking cancelled",
                                         "Booking {booking_number} on {date} at {time} was cancelled."),
    ("therapist_assigned", "customer"): ("Therapist assigned",
                                         "{therapist_name} will take care of your booking {booking_number} on {date} "
                                         "at {time}."),
    ("therapist_assigned", "therapist"): ("New assignment",
                                          "You are assigned to booking {booking_number} on {date} at {time}."),
    ("therapist_arrived", "customer"): ("Your therapist has arrived",
                                        "{therapist_name} has arrived for booking {booking_number}."),
    ("service_started", "customer"): ("Your session has started", "Your session for booking {booking_number} has "
                                                                  "started. Relax and enjoy."),
    ("service_completed", "customer"): ("How was your session?",
                                        "Rate your therapist for booking {booking_number} and earn loyalty points."),
    ("payment_received", "customer"): ("Payment received",
                                       "We received Rs {amount} for booking {booking_number}. Thank you."),
    ("refund_processed", "customer"): ("Refund processed",
                                       "Your refund for booking {booking_number} has been processed."),
    ("reminder", "customer"): ("Your booking is coming up",
                               "Reminder: booking {booking_number} is today at {time}."),
    ("reminder", "therapist"): ("Upcoming session", "Reminder: booking {booking_number} is today at {time}."),
}
THERAPIST_TOLD = ("therapist_assigned", "booking_cancelled", "reminder")


class _Safe(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


EVENT_SQL = """
SELECT e.id, e.type, e.data, e.created_at, b.id AS booking_id, b.booking_number, b.booking_date, b.booking_time,
       b.customer_id, b.total_amount,
       t.id AS therapist_id, t.name AS therapist_name, t.user_id AS therapist_user
FROM notification_events AS e
LEFT JOIN bookings AS b ON b.id = e.booking_id
LEFT JOIN LATERAL (
    SELECT th.id, th.name, th.user_id FROM therapists AS th
    WHERE th.id = CAST(e.data ->> 'therapist_id' AS uuid)
       OR (e.data ->> 'therapist_id' IS NULL AND th.id = (
            SELECT a.therapist_id FROM therapist_assignments AS a WHERE a.booking_id = b.id
            ORDER BY (a.status = 'cancelled'), a.created_at DESC LIMIT 1))
    LIMIT 1
) AS t ON true
WHERE e.id = ANY(CAST(:ids AS bigint[]))
"""


def _events(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    return {row["id"]: dict(row) for row in conn.execute(text(EVENT_SQL), {"ids": list(ids)}).mappings()}


def _values(event: Mapping[str, Any]) -> _Safe:
    amount = (event.get("data") or {}).get("amount") or event.get("total_amount") or ""
    return _Safe({
        "booking_number": str(event.get("booking_number") or ""),
        "date": event["booking_date"].strftime("%d %b") if event.get("booking_date") else "",
        "time": event["booking_time"].strftime("%H:%M") if event.get("booking_time") else "",
        "therapist_name": str(event.get("therapist_name") or "Your therapist"),
        "amount": str(amount),
    })


def compose_event(event: Mapping[str, Any], r: Recipient, channels: Sequence[str] = ()) -> Message:
    audience = "customer" if r.user_id == event.get("customer_id") else "therapist"
    title, body = TEMPLATES.get((event["type"], audience)) or TEMPLATES.get((event["type"], "customer")) or (
        "OMBARO", "You have an update on booking {booking_number}.")
    values = _values(event)
    title, body = title.format_map(values), body.format_map(values)
    data = {"booking_id": str(event.get("booking_id") or ""), "event": str(event["type"])}
    ref = str(r.delivery_id)
    if r.channel == "email":
        return Message(ref=ref, to=r.email or "", subject=title, body=body, user_id=r.user_id, data=data)
    if r.channel in ("sms", "whatsapp"):
        return Message(ref=ref, to=r.mobile or "", body=f"OMBARO: {body}\n{SMS_OPT_OUT}", user_id=r.user_id)
    if r.channel == "push":
        return Message(ref=ref, to=r.device_token or "", subject=title, body=body, data=data, user_id=r.user_id)
    return Message(ref=ref, to=str(r.user_id), subject=title, body=body, user_id=r.user_id, kind=event["type"],
                   data={**data, "channels": ",".join(channels or ("in_app",))})


def compose(conn: Connection, event_id: int, r: Recipient) -> Message:
    """The message of one event to one recipient, composed again (the reconciler's look-up)."""
    return compose_event(_events(conn, [event_id])[event_id], r)


# --- events -> deliveries ---------------------------------------------------------------------------

def _allowed(prefs: Mapping[str, Any] | None, *, email: str | None, mobile: str | None,
             has_device: bool) -> list[str]:
    prefs = prefs or {}

    def on(channel: str) -> bool:
        return str(prefs.get(channel, True)).lower() != "false"

    allowed = ["in_app"]
    if on("push") and has_device:
        allowed.append("push")
    if on("sms") and mobile:
        allowed.append("sms")
    if str(prefs.get("whatsapp", False)).lower() == "true" and mobile:
        allowed.append("whatsapp")
    if on("email") and email:
        allowed.append("email")
    return allowed


def expand_events(rt: Runtime, *, limit: int = 500) -> Counter[str]:
    """Pending events -> deliveries, in one transaction with marking the events done."""
    counts: Counter[str] = Counter()
    with rt.tx() as conn:
        claimed = conn.execute(text(
            "UPDATE notification_events SET status = 'done', processed_at = now() WHERE id IN ("
            "  SELECT id FROM notification_events WHERE status = 'pending' ORDER BY created_at, id LIMIT :limit "
            "  FOR UPDATE SKIP LOCKED) RETURNING id"), {"limit": limit}).scalars().all()
        if not claimed:
            return counts
        events = _events(conn, claimed)
        today = dt.datetime.now(rt.settings.zone).date()
        wanted: dict[uuid.UUID, set[int]] = {}
        for event in events.values():
            if event.get("booking_date") is None or event["booking_date"] < today - dt.timedelta(days=STALE_DAYS):
                counts["stale"] += 1
                continue
            people = [event["customer_id"]]
            if event["type"] in THERAPIST_TOLD and event.get("therapist_user"):
                people.append(event["therapist_user"])
            for person in people:
                wanted.setdefault(person, set()).add(event["id"])
        if not wanted:
            return counts
        people_rows = conn.execute(text(
            "SELECT u.id, u.email, p.mobile, coalesce(c.communication_preferences, "
            "       p.preferences -> 'notifications') AS prefs, "
            "       EXISTS (SELECT 1 FROM push_devices AS d "
            "               WHERE d.user_id = u.id AND d.disabled_at IS NULL) AS device, "
            "       coalesce(p.status, 'active') AS status "
            "FROM auth.users AS u LEFT JOIN user_profiles AS p ON p.id = u.id LEFT JOIN customers AS c ON c.id = u.id "
            "WHERE u.id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(wanted)}).mappings().all()
        rows: list[dict[str, Any]] = []
        for person in people_rows:
            if person["status"] == "suspended":
                continue
            for channel in _allowed(person["prefs"], email=person["email"], mobile=person["mobile"],
                                    has_device=person["device"]):
                rows.extend({"event": e, "user": person["id"], "channel": channel} for e in wanted[person["id"]])
        if rows:
            inserted = conn.execute(text(
                "INSERT INTO message_deliveries (event_id, user_id, channel) "
                "SELECT * FROM unnest(CAST(:events AS bigint[]), CAST(:users AS uuid[]), CAST(:channels AS text[])) "
                "ON CONFLICT (event_id, user_id, channel) WHERE event_id IS NOT NULL DO NOTHING"),
                {"events": [r["event"] for r in rows], "users": [r["user"] for r in rows],
                 "channels": [r["channel"] for r in rows]})
            counts["deliveries"] += inserted.rowcount or 0
        counts["events"] += len(claimed)
    return counts


# --- sending -----------------------------------------------------------------------------------------

def send_due(rt: Runtime, *, deadline: float, progress: Progress | None = None,
             claimant: Claimant | None = None) -> Counter[str]:
    """Claim, send and record due deliveries, channel by channel, under each provider's bucket.
    `claimant` (job id, attempt) is recorded on each claimed delivery: without it a delivery left
    in `sending` by a dead worker waits for the fixed staleness instead of its lease."""
    totals: Counter[str] = Counter()
    for channel in CHANNEL_ORDER:
        sender = rt.channels.sender(channel)
        batch = rt.batch_size(sender)
        while time.monotonic() < deadline:
            limit, _wait = take_tokens(rt, sender, batch)
            if not limit:
                break  # the next dispatch (every 30 s) goes on
            with rt.tx() as conn:
                ids = conn.execute(text(
                    "WITH due AS (SELECT id FROM message_deliveries WHERE status = 'pending' AND event_id IS NOT NULL "
                    "    AND next_attempt_at <= now() AND channel = :channel ORDER BY next_attempt_at LIMIT :limit "
                    "    FOR UPDATE SKIP LOCKED) "
                    "UPDATE message_deliveries AS d SET status = 'sending', attempts = d.attempts + 1, "
                    "sending_at = now(), provider = :provider, sending_job_id = CAST(:job AS uuid), "
                    "sending_attempt = CAST(:attempt AS integer), updated_at = now() FROM due WHERE d.id = due.id "
                    "RETURNING d.id"), {"channel": channel, "limit": limit, "provider": sender.provider,
                                        "job": claimant[0] if claimant else None,
                                        "attempt": claimant[1] if claimant else None}
                ).scalars().all()
                if not ids:
                    break
                loaded = load_recipients(conn, ids)
                events = _events(conn, list({item.event_id for item in loaded if item.event_id is not None}))
                channels_of = _channels_per_person(conn, loaded) if channel == "in_app" else {}
                existing = _written_elsewhere(conn, loaded, events) if channel == "in_app" else {}
                if existing:
                    mark_sent(conn, list(existing.items()), status="delivered")
            messages, cannot = [], []
            for item in loaded:
                if item.recipient.delivery_id in existing:
                    totals["delivered"] += 1
                    continue
                why = unreachable(item.recipient)
                if why:
                    cannot.append((item.recipient.delivery_id, why))
                    continue
                event_id = cast(int, item.event_id)  # claimed above with `event_id IS NOT NULL`
                messages.append(compose_event(events[event_id], item.recipient,
                                              channels_of.get((event_id, item.recipient.user_id), ())))
            totals.update(transmit(rt, sender, messages, cannot))
            if progress:
                progress(0, f"{sum(totals.values())} notifications")
    return totals


def _written_elsewhere(conn: Connection, loaded: Sequence[Any],
                       events: Mapping[int, Mapping[str, Any]]) -> dict[int, str]:
    """In-app deliveries whose notification another writer already stored (dispatch's triggers
    write some booking notifications themselves): delivery id -> that notification's id. The row
    is the in-app message; only the other channels still go out."""
    found: dict[int, str] = {}
    for item in loaded:
        event = events.get(item.event_id)
        if event is None or event.get("booking_id") is None:
            continue
        row = conn.execute(text(
            "SELECT id FROM notifications WHERE user_id = :u AND type = :t AND data ->> 'booking_id' = :b "
            "AND data ->> 'delivery_id' IS NULL AND created_at >= :since ORDER BY created_at LIMIT 1"),
            {"u": item.recipient.user_id, "t": event["type"], "b": str(event["booking_id"]),
             "since": event["created_at"] - dt.timedelta(minutes=1)}).scalar()
        if row is not None:
            found[item.recipient.delivery_id] = str(row)
    return found


def _channels_per_person(conn: Connection, loaded: Sequence[Any]) -> dict[tuple[int, uuid.UUID], list[str]]:
    events = list({item.event_id for item in loaded})
    rows = conn.execute(text(
        "SELECT event_id, user_id, array_agg(channel ORDER BY channel) FROM message_deliveries "
        "WHERE event_id = ANY(CAST(:events AS bigint[])) GROUP BY event_id, user_id"), {"events": events}).all()
    return {(e, u): list(chs) for e, u, chs in rows}


def dispatch(session: Session, rt: Runtime, job: JobRef, progress: Progress) -> dict[str, Any]:
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    expanded: Counter[str] = Counter()
    while time.monotonic() < deadline:
        batch = expand_events(rt)
        expanded.update(batch)
        if not batch.get("events"):
            break
    sent = send_due(rt, deadline=deadline, progress=progress, claimant=(job.id, job.attempts))
    return {"events": expanded.get("events", 0), "stale_events": expanded.get("stale", 0),
            "deliveries": expanded.get("deliveries", 0), **{f"sent_{k}": v for k, v in sent.items()}}


def scan_reminders(session: Session, rt: Runtime, job: JobRef, progress: Progress) -> dict[str, Any]:
    """Reminder events for confirmed bookings starting within two hours that were booked before
    the reminder time; one per booking and start time (a rescheduled booking is reminded again)."""
    with rt.tx() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        today = now.astimezone(rt.settings.zone).date()
        created = conn.execute(text(
            "INSERT INTO notification_events (type, booking_id, dedupe_key, data) "
            "SELECT 'reminder', b.id, 'reminder:' || b.id || ':' || b.booking_date || 'T' || b.booking_time, "
            "       jsonb_build_object('starts_at', (b.booking_date + b.booking_time) AT TIME ZONE :zone) "
            "FROM bookings AS b "
            "WHERE b.status IN ('confirmed', 'assigned') AND b.booking_date BETWEEN :today AND :tomorrow "
            "  AND (b.booking_date + b.booking_time) AT TIME ZONE :zone > now() "
            "  AND (b.booking_date + b.booking_time) AT TIME ZONE :zone <= now() + INTERVAL '2 hours' "
            "  AND b.created_at <= (b.booking_date + b.booking_time) AT TIME ZONE :zone - INTERVAL '2 hours' "
            "ON CONFLICT (dedupe_key) DO NOTHING"),
            {"zone": rt.settings.timezone, "today": today, "tomorrow": today + dt.timedelta(days=1)}).rowcount or 0
    result = dispatch(session, rt, job, progress)
    return {"reminders": created, **result}


def request_dispatch(session: Session, enqueue: commands.Enqueue) -> commands.Submitted:
    """For code that changed a booking and wants its notifications out now rather than at the next
    30-second dispatch: submits `notifications.dispatch` (sent after the caller commits)."""
    return commands.submit(session, KIND_DISPATCH, {}, enqueue=enqueue)


# --- the user's in-app inbox (in the caller's session: row-level security shows their own) -------


def inbox(session: Session, *, unread: bool, before: dt.datetime | None, limit: int) -> Sequence[Notification]:
    """The caller's notifications newest first; `unread` only those not read, `before` for paging."""
    query = select(Notification).order_by(Notification.created_at.desc(), Notification.id).limit(limit)
    if unread:
        query = query.where(Notification.is_read.is_not(True))
    if before is not None:
        query = query.where(Notification.created_at < before)
    return session.scalars(query).all()


def mark_read(session: Session, notification: Notification) -> Notification:
    """Read now (by the database's clock), unless it already was."""
    if not notification.is_read:
        notification.is_read, notification.read_at = True, func.now()  # the server's clock
        session.flush()
        session.refresh(notification)
    return notification


def mark_all_read(session: Session) -> int:
    """Every unread notification the caller sees becomes read; how many."""
    done = session.execute(update(Notification).where(Notification.is_read.is_not(True))
                           .values(is_read=True, read_at=func.now()))
    return done.rowcount or 0  # type: ignore[attr-defined]  # an UPDATE's result has a row count


def register_device(session: Session, *, user_id: uuid.UUID, token: str, platform: str | None) -> None:
    """The device token for push belongs to `user_id` from now on (a phone changing hands moves it).
    The session must act as the workers' role: the token's row may be another account's."""
    session.execute(text(
        "INSERT INTO push_devices (user_id, token, platform) VALUES (:u, :t, :p) "
        "ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform, "
        "last_seen_at = now(), disabled_at = NULL"), {"u": user_id, "t": token, "p": platform})
