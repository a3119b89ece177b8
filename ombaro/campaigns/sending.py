"""Running a campaign on the workers: the start (streaming the audience into chunk jobs), one
chunk (deliveries written, claimed, sent, recorded), the minutely tick, and completion.

- `start`: the audience is read with a server-side cursor, `CHUNK_SIZE` customer ids at a time,
  never whole; each run of ids becomes a `campaigns.send_chunk` job over the bulk queue with the
  range (after, upto], so several workers share a large campaign.
- `send_chunk`: the range's audience is evaluated again (it is the send time), its deliveries are
  inserted once (`ON CONFLICT DO NOTHING` on (campaign, customer, channel)), then claimed and sent
  in batches under the provider's token bucket. Consent, quiet hours and the weekly cap are checked
  again at every claim. Work that must wait (quiet hours, a long Retry-After, a retry's back-off)
  continues in a delayed job (jobs.run_after), never in the broker.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.campaigns import metrics
from ombaro.campaigns.audience import (
    ELIGIBLE,
    FROM_CUSTOMERS,
    LOWEST_ID,
    Target,
    audience_where,
    eligible_any,
    eligible_case,
)
from ombaro.campaigns.content import CampaignComposer, Unsubscribe, channels_of
from ombaro.campaigns.unsubscribe import link
from ombaro.commands import JobRef, Progress
from ombaro.messaging import (
    Runtime,
    delay_job,
    load_recipients,
    no_enqueue,
    take_tokens,
    unreachable,
)

log = logging.getLogger(__name__)

CHUNK_SIZE = 5000
KIND_START = "campaigns.start"
KIND_CHUNK = "campaigns.send_chunk"
MAX_JOB_SECONDS = 600  # a chunk job hands over to a fresh job well within the task time limit
QUIET_START, QUIET_END = dt.time(21, 0), dt.time(9, 0)
DEFAULT_BASE_URL = "http://localhost:8000"
HIGHEST_ID = uuid.UUID(int=2**128 - 1)
QUIET_CHANNELS = ("sms", "whatsapp", "push")  # marketing on these waits out 21:00-09:00 local time


def scope(campaign_id: uuid.UUID | str) -> str:
    """The idempotency scope of a campaign's jobs: finds them through the jobs' unique index."""
    return f"campaign:{campaign_id}"


def submit_start(session: Session, enqueue: commands.Enqueue, campaign_id: uuid.UUID, *, key: str,
                 requested_by: uuid.UUID | None = None, chunk_size: int | None = None) -> commands.Submitted:
    params: dict[str, Any] = {"campaign_id": str(campaign_id)}
    if chunk_size:
        params["chunk_size"] = chunk_size
    return commands.submit(session, KIND_START, params, enqueue=enqueue, key=key, scope=scope(campaign_id),
                           requested_by=requested_by)


# --- start: the fan-out -----------------------------------------------------------------------------

def start(session: Session, rt: Runtime, job: JobRef, progress: Progress, *, campaign_id: uuid.UUID,
          chunk_size: int | None = None) -> dict[str, Any]:
    chunk_size = chunk_size or CHUNK_SIZE
    row = session.execute(text(
        "SELECT status, type, target_audience, content FROM campaigns WHERE id = :id FOR UPDATE"),
        {"id": campaign_id}).mappings().one_or_none()
    if row is None:
        return {"skipped": "no such campaign"}
    if row["status"] == "scheduled":
        session.execute(text("UPDATE campaigns SET status = 'active', updated_at = now() WHERE id = :id"),
                        {"id": campaign_id})
    elif row["status"] != "active":
        return {"skipped": f"the campaign is {row['status']}"}
    channels = list(channels_of(row["type"], row["content"] or {}))
    target = Target.parse(row["target_audience"])
    now = session.execute(text("SELECT now()")).scalar_one()
    params: dict[str, Any] = {}
    where = audience_where(target, today=now.astimezone(rt.settings.zone).date(), now=now, params=params)
    query = text(f"SELECT c.id FROM {FROM_CUSTOMERS} WHERE {where} AND {eligible_any(channels)} ORDER BY c.id")
    # A server-side cursor: PostgreSQL sends the ids as they are fetched, chunk_size at a time.
    stream = session.connection().execute(
        query.execution_options(stream_results=True, max_row_buffer=chunk_size), params)
    bounds: list[uuid.UUID] = []
    customers = 0
    for partition in stream.partitions(chunk_size):
        bounds.append(partition[-1][0])  # only the last id of each chunk is kept, never the audience
        customers += len(partition)
        progress(0, f"{len(bounds)} chunks, {customers} customers")
    stream.close()
    # The ranges cover every id (the last one reaches the highest uuid): a delivery whose customer
    # has since left the audience (opted out) still lies in some chunk, which skips it.
    if bounds:
        bounds[-1] = HIGHEST_ID
    after = LOWEST_ID
    for upto in bounds:
        commands.submit(session, KIND_CHUNK,
                        {"campaign_id": str(campaign_id), "after": str(after), "upto": str(upto),
                         "start_job": str(job.id)},
                        enqueue=rt.enqueue, key=f"{job.id}:{after}", scope=scope(campaign_id),
                        requested_by=job.requested_by)
        after = upto
    chunks = len(bounds)
    return {"chunks": chunks, "customers": customers, "channels": channels}


# --- one chunk ---------------------------------------------------------------------------------------

class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def send_chunk(session: Session, rt: Runtime, job: JobRef, progress: Progress, *, campaign_id: uuid.UUID,
               after: uuid.UUID, upto: uuid.UUID, materialize_first: bool = True) -> dict[str, Any]:
    """Send one chunk's deliveries (customers with ids in (after, upto]); with `materialize_first`
    False only what is pending is sent (reconciliation)."""
    began = time.monotonic()
    totals: Counter[str] = Counter()

    def state(conn: Connection | None = None) -> dict[str, Any]:
        """The campaign as it is now; _Stop when it must not send (read in the claim's transaction)."""
        query = text("SELECT status, type, content, target_audience, end_date, now() AS now FROM campaigns "
                     "WHERE id = :id")
        if conn is None:
            with rt.tx() as own:
                row = own.execute(query, {"id": campaign_id}).mappings().one_or_none()
        else:
            row = conn.execute(query, {"id": campaign_id}).mappings().one_or_none()
        if row is None:
            raise _Stop("no such campaign")
        if row["status"] in ("cancelled", "completed") or (row["end_date"] and row["end_date"] <= row["now"]):
            reason = "cancelled" if row["status"] == "cancelled" else "expired"
            with rt.tx() as conn:
                skipped = close_range(conn, campaign_id, after, upto, reason)
            totals["skipped"] += skipped
            raise _Stop(reason)
        if row["status"] != "active":
            raise _Stop(row["status"])  # paused: pending rows wait for resume
        return dict(row)

    try:
        campaign = state()
        channels = list(channels_of(campaign["type"], campaign["content"] or {}))
        composer = CampaignComposer(campaign_id, campaign["type"], campaign["content"] or {})
        if materialize_first:
            with rt.tx() as conn:
                totals["written"] += materialize(conn, rt, campaign_id, campaign["target_audience"], channels,
                                                 after, upto)
        while True:
            for channel in channels:
                resume_at = _send_channel(rt, campaign_id, channel, after, upto, composer, totals, state, progress,
                                          began, claimant=(job.id, job.attempts))
                if resume_at is not None:
                    _continue_later(session, rt, job, campaign_id, resume_at)
                    return {**totals, "continued_at": resume_at.isoformat()}
            with rt.tx() as conn:
                next_due, now = conn.execute(text(
                    "SELECT min(next_attempt_at), now() FROM message_deliveries WHERE campaign_id = :c "
                    "AND user_id > :after AND user_id <= :upto AND status = 'pending'"),
                    {"c": campaign_id, "after": after, "upto": upto}).one()
            if next_due is None:
                break
            wait = (next_due - now).total_seconds()
            if wait > rt.max_inline_wait or time.monotonic() - began > MAX_JOB_SECONDS:
                _continue_later(session, rt, job, campaign_id, max(next_due, now))
                return {**totals, "continued_at": next_due.isoformat()}
            progress(0, f"waiting {wait:.1f}s for retries")
            rt.sleep(max(0.0, wait))
            state()
    except _Stop as stop:
        finish(rt, campaign_id, exclude_job=job.id)
        return {**totals, "stopped": stop.reason}
    finish(rt, campaign_id, exclude_job=job.id)
    return dict(totals)


def finish_after_chunk(rt: Runtime, job_id: uuid.UUID) -> bool:
    """Once a chunk job's outcome is recorded: complete its campaign if nothing is left. The check a
    chunk makes at its end cannot see a sibling that finishes at the same moment (each still sees the
    other running, so neither completes); made after the outcome is committed, the later of two
    always sees the earlier one done."""
    with rt.tx() as conn:
        campaign_id = conn.execute(text("SELECT params ->> 'campaign_id' FROM jobs WHERE id = :id"),
                                   {"id": job_id}).scalar_one_or_none()
    return campaign_id is not None and finish(rt, uuid.UUID(campaign_id), refresh=False)


def finish(rt: Runtime, campaign_id: uuid.UUID, *, exclude_job: uuid.UUID | None = None,
           refresh: bool = True) -> bool:
    """Complete the campaign if nothing of it is left, and bring its metrics up to date."""
    with rt.tx() as conn:
        completed = maybe_complete(conn, campaign_id, exclude_job=exclude_job)
    if completed:
        metrics.refresh(rt, campaign_id)
    elif refresh:
        metrics.refresh_soon(rt, campaign_id)
    return completed


def _send_channel(rt: Runtime, campaign_id: uuid.UUID, channel: str, after: uuid.UUID, upto: uuid.UUID,
                  composer: CampaignComposer, totals: Counter[str], state: Callable[..., dict[str, Any]],
                  progress: Progress, began: float, *, claimant: tuple[uuid.UUID, int]) -> dt.datetime | None:
    """Send what is due on one channel of the range; returns when to continue if it must wait.
    `claimant` (the job and attempt) is recorded on every delivery this worker moves to `sending`."""
    sender = rt.channels.sender(channel)
    with rt.tx() as conn:
        triaged = claim(conn, rt, campaign_id, channel, after, upto, limit=None, provider=sender.provider)
    totals.update(status for _, status in triaged)
    batch = rt.batch_size(sender)
    last_claimed = batch
    messaging = rt.settings.messaging
    # The previous batch is sent and recorded on the runtime's background thread while this loop
    # claims the next one: the provider and the database work at the same time.
    in_flight: Future[Counter[str]] | None = None

    def settle() -> None:
        nonlocal in_flight
        if in_flight is not None:
            done, in_flight = in_flight, None
            totals.update(done.result())
            progress(0, f"{channel}: {totals['sent'] + totals['delivered']} sent")

    try:
        while True:
            if last_claimed < batch:
                with rt.tx() as conn:
                    if not has_due(conn, campaign_id, channel, after, upto):
                        return None
            if time.monotonic() - began > MAX_JOB_SECONDS:
                return dt.datetime.now(dt.UTC)
            limit, wait = take_tokens(rt, sender, batch, on_wait=lambda: progress(0, f"rate limited on {channel}"))
            if not limit:
                return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            with rt.tx() as conn:
                state(conn)  # paused, cancelled or ended a moment ago: nothing more is claimed
                claimed = claim(conn, rt, campaign_id, channel, after, upto, limit=limit, provider=sender.provider,
                                claimant=claimant)
                sending = [i for i, status in claimed if status == "sending"]
                totals.update(status for _, status in claimed if status != "sending")
                loaded = load_recipients(conn, sending) if sending else []
            last_claimed = len(claimed)
            if not claimed:
                return None
            messages, cannot = [], []
            base_url = messaging.public_base_url or DEFAULT_BASE_URL
            for item in loaded:
                r = item.recipient
                why = unreachable(r)
                if why:
                    cannot.append((r.delivery_id, why))
                    continue
                unsubscribe = Unsubscribe(link(base_url, messaging.unsubscribe_secret, r.delivery_id, r.user_id)) \
                    if channel == "email" else None
                messages.append(composer.compose(r, unsubscribe))
            settle()
            in_flight = rt.transmit_soon(sender, messages, cannot)
    finally:
        settle()  # nothing of this job is left in flight when it returns or stops


def materialize(conn: Connection, rt: Runtime, campaign_id: uuid.UUID, target_audience: Any,
                channels: Sequence[str], after: uuid.UUID, upto: uuid.UUID) -> int:
    """Write the range's deliveries as `pending`, once per (campaign, customer, channel)."""
    now = conn.execute(text("SELECT now()")).scalar_one()
    params: dict[str, Any] = {"campaign": campaign_id, "channels": list(channels), "after": after, "upto": upto}
    where = audience_where(Target.parse(target_audience), today=now.astimezone(rt.settings.zone).date(), now=now,
                           params=params)
    inserted = conn.execute(text(
        "INSERT INTO message_deliveries (campaign_id, user_id, channel) "
        f"SELECT :campaign, c.id, ch.channel FROM {FROM_CUSTOMERS} "
        "CROSS JOIN unnest(CAST(:channels AS text[])) AS ch(channel) "
        f"WHERE c.id > :after AND c.id <= :upto AND {where} AND {eligible_case('ch.channel', channels)} "
        "ON CONFLICT (campaign_id, user_id, channel) WHERE campaign_id IS NOT NULL DO NOTHING"), params)
    return inserted.rowcount or 0


_ZONES: list[str] | None = None


def known_zones(conn: Connection) -> list[str]:
    """Zone names both PostgreSQL and Python know: a recipient's own zone is used only if listed."""
    global _ZONES
    if _ZONES is None:
        names = set(conn.execute(text("SELECT name FROM pg_timezone_names")).scalars())
        _ZONES = sorted(names & zoneinfo.available_timezones())
    return _ZONES


def claim(conn: Connection, rt: Runtime, campaign_id: uuid.UUID, channel: str, after: uuid.UUID, upto: uuid.UUID,
          *, limit: int | None, provider: str,
          claimant: tuple[uuid.UUID, int] | None = None) -> list[tuple[int, str]]:
    """Due `pending` deliveries of the range and channel, decided at this moment: opted out or
    suspended -> skipped; over the weekly cap -> skipped; in the recipient's quiet hours -> stays
    pending until 09:00 there. With a limit, up to `limit` of the others become `sending` (this
    worker's to send); without one (triage), the others are left pending. A row moved to `sending`
    records the claimant (job, attempt): the reconciler knows it in doubt once that attempt is dead.
    Returns (id, new status) of the rows changed."""
    zone_expr = ("CASE WHEN p.preferences ->> 'timezone' = ANY(CAST(:zones AS text[])) "
                 "THEN p.preferences ->> 'timezone' ELSE CAST(:zone AS text) END")
    local = f"(now() AT TIME ZONE {zone_expr})"
    if channel in QUIET_CHANNELS:
        quiet = f"(CAST({local} AS time) >= TIME '{QUIET_START}' OR CAST({local} AS time) < TIME '{QUIET_END}')"
        quiet_until = (f"((CASE WHEN CAST({local} AS time) >= TIME '{QUIET_START}' "
                       f"THEN date_trunc('day', {local}) + INTERVAL '1 day' ELSE date_trunc('day', {local}) END) "
                       f"+ INTERVAL '{QUIET_END.hour} hours') AT TIME ZONE {zone_expr}")
    else:
        quiet, quiet_until = "false", "NULL::timestamptz"
    capped = ("(SELECT count(*) FROM message_deliveries AS x WHERE x.user_id = d.user_id AND x.channel = d.channel "
              "AND x.campaign_id IS NOT NULL AND x.campaign_id <> d.campaign_id "
              "AND x.sent_at > now() - INTERVAL '7 days') >= :cap")
    send_now = "'sending'" if limit is not None else "'pending'"
    only_changed = "" if limit is not None else "AND (v.opted_out OR v.capped OR v.quiet)"
    rows = conn.execute(text(f"""
        WITH due AS (
            SELECT d.id FROM message_deliveries AS d
            WHERE d.campaign_id = :campaign AND d.channel = :channel AND d.user_id > :after AND d.user_id <= :upto
              AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.user_id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ), verdict AS (
            SELECT d.id,
                   NOT ({ELIGIBLE[channel]}) OR p.status <> 'active' AS opted_out,
                   {capped} AS capped,
                   {quiet} AS quiet,
                   {quiet_until} AS quiet_until
            FROM due
            JOIN message_deliveries AS d ON d.id = due.id
            JOIN customers AS c ON c.id = d.user_id
            JOIN user_profiles AS p ON p.id = d.user_id
        )
        UPDATE message_deliveries AS d SET
            status = CASE WHEN v.opted_out OR v.capped THEN 'skipped' WHEN v.quiet THEN 'pending' ELSE {send_now} END,
            error = CASE WHEN v.opted_out THEN 'opted_out' WHEN v.capped THEN 'frequency_cap' ELSE d.error END,
            next_attempt_at = CASE WHEN NOT (v.opted_out OR v.capped) AND v.quiet THEN v.quiet_until
                                   ELSE d.next_attempt_at END,
            attempts = d.attempts + CASE WHEN v.opted_out OR v.capped OR v.quiet OR {send_now} = 'pending'
                                         THEN 0 ELSE 1 END,
            sending_at = CASE WHEN v.opted_out OR v.capped OR v.quiet OR {send_now} = 'pending'
                              THEN d.sending_at ELSE now() END,
            sending_job_id = CASE WHEN v.opted_out OR v.capped OR v.quiet OR {send_now} = 'pending'
                                  THEN d.sending_job_id ELSE CAST(:job AS uuid) END,
            sending_attempt = CASE WHEN v.opted_out OR v.capped OR v.quiet OR {send_now} = 'pending'
                                   THEN d.sending_attempt ELSE CAST(:attempt AS integer) END,
            provider = :provider,
            updated_at = now()
        FROM verdict AS v
        WHERE d.id = v.id {only_changed}
        RETURNING d.id, d.status"""),
        {"campaign": campaign_id, "channel": channel, "after": after, "upto": upto,
         "limit": limit if limit is not None else 1_000_000, "zones": known_zones(conn),
         "zone": rt.settings.timezone, "cap": rt.settings.messaging.weekly_cap.get(channel, 3),
         "provider": provider, "job": claimant[0] if claimant else None,
         "attempt": claimant[1] if claimant else None}).all()
    return [(int(i), str(s)) for i, s in rows]


def has_due(conn: Connection, campaign_id: uuid.UUID, channel: str, after: uuid.UUID, upto: uuid.UUID) -> bool:
    due: bool = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM message_deliveries WHERE campaign_id = :c AND channel = :ch "
        "AND user_id > :after AND user_id <= :upto AND status = 'pending' AND next_attempt_at <= now())"),
        {"c": campaign_id, "ch": channel, "after": after, "upto": upto}).scalar_one()
    return due


def close_range(conn: Connection, campaign_id: uuid.UUID, after: uuid.UUID, upto: uuid.UUID, reason: str) -> int:
    """A cancelled or ended campaign sends nothing more: its pending deliveries are skipped."""
    done = conn.execute(text(
        "UPDATE message_deliveries SET status = 'skipped', error = :reason, updated_at = now() "
        "WHERE campaign_id = :c AND user_id > :after AND user_id <= :upto AND status = 'pending'"),
        {"c": campaign_id, "after": after, "upto": upto, "reason": reason})
    return done.rowcount or 0


def _continue_later(session: Session, rt: Runtime, job: JobRef, campaign_id: uuid.UUID, at: dt.datetime) -> None:
    """The rest of this chunk runs as a new job at `at` (a delayed job waits in PostgreSQL), with
    the same params."""
    now = dt.datetime.now(dt.UTC)
    due_now = at <= now + dt.timedelta(seconds=1)
    submitted = commands.submit(session, KIND_CHUNK, dict(job.params), enqueue=rt.enqueue if due_now else no_enqueue,
                                key=f"{job.id}:continued", scope=scope(campaign_id),
                                requested_by=job.requested_by)
    if not due_now:
        delay_job(session.connection(), submitted.job.id, at)


# --- completion and the minutely tick -------------------------------------------------------------------

def maybe_complete(conn: Connection, campaign_id: uuid.UUID, *, exclude_job: uuid.UUID | None = None) -> bool:
    """An active campaign this engine started is complete when none of its jobs is waiting or
    running and every delivery has its outcome (none pending, being sent, or unknown)."""
    done = conn.execute(text(
        "UPDATE campaigns SET status = 'completed', updated_at = now() WHERE id = :c AND status = 'active' "
        "AND EXISTS (SELECT 1 FROM jobs WHERE kind = :start AND idempotency_scope = :scope "
        "            AND idempotency_key IS NOT NULL) "
        "AND NOT EXISTS (SELECT 1 FROM jobs WHERE kind IN (:start, :chunk) AND idempotency_scope = :scope "
        "                AND idempotency_key IS NOT NULL AND status IN ('queued', 'running') AND id <> :me) "
        "AND NOT EXISTS (SELECT 1 FROM message_deliveries WHERE campaign_id = :c AND status = 'pending') "
        "AND NOT EXISTS (SELECT 1 FROM message_deliveries WHERE status IN ('sending', 'unknown') "
        "                AND campaign_id = :c) "
        "RETURNING id"),
        {"c": campaign_id, "start": KIND_START, "chunk": KIND_CHUNK, "scope": scope(campaign_id),
         "me": exclude_job or uuid.UUID(int=0)}).first()
    return done is not None


def start_due(session: Session, rt: Runtime, job: JobRef, progress: Progress) -> dict[str, Any]:
    """Every minute: start approved campaigns whose start time has come, end those past their end
    date, complete finished ones and refresh the metrics of the ones still changing."""
    due = session.execute(text(
        "SELECT id FROM campaigns WHERE status = 'scheduled' AND approved_by IS NOT NULL "
        "AND start_date IS NOT NULL AND start_date <= now() ORDER BY start_date LIMIT 100")).scalars().all()
    for campaign_id in due:
        submit_start(session, rt.enqueue, campaign_id, key="scheduled", requested_by=job.requested_by)
    with rt.tx() as conn:
        ended = conn.execute(text(
            "UPDATE campaigns SET status = 'completed', updated_at = now() "
            "WHERE status IN ('active', 'paused') AND end_date IS NOT NULL AND end_date <= now() RETURNING id"
        )).scalars().all()
        for campaign_id in ended:
            conn.execute(text("UPDATE message_deliveries SET status = 'skipped', error = 'expired', updated_at = now() "
                              "WHERE campaign_id = :c AND status = 'pending'"), {"c": campaign_id})
    with rt.tx() as conn:
        active = conn.execute(text("SELECT id FROM campaigns WHERE status = 'active'")).scalars().all()
    completed = sum(finish(rt, campaign_id, refresh=False) for campaign_id in active)
    refreshed = metrics.refresh_recent(rt)
    return {"started": len(due), "ended": len(ended), "completed": completed, "metrics_refreshed": refreshed}
