"""Sending claimed deliveries and recording what the provider answered: the runtime campaigns and
booking notifications share.

The exactly-once rule lives in the order of three short transactions, each committed on its own
(not in the job's transaction, which is rolled back if the worker dies):

1. claim: `pending` -> `sending` (with `sending_at`, the provider and the claimant: the job and
   attempt making the call, migration 0014), committed before any call;
2. the provider call, outside any transaction;
3. record: `sending` -> `sent` / `failed` / `pending` again (nothing was sent: 429, 5xx, refused
   connection) / `unknown` (the call may have reached the provider: a timeout).

A row is only ever sent from `pending`, and only by the worker whose claim moved it to `sending`.
A worker killed between 2 and 3 leaves `sending`; nobody sends it again until reconciliation has
decided (ombaro/messaging/reconcile.py), which it does as soon as the claimant's lease is dead.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from ombaro.commands import Enqueue
from ombaro.config import Settings
from ombaro.db import WORKER_ROLE
from ombaro.messaging.throttle import TokenBucket
from ombaro.providers.channels import Channels, Message, Result, Sender

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # provider attempts per delivery (429 / 5xx / refused connections) before it fails
BACKOFF_CAP_SECONDS = 300
SMS_OPT_OUT = "Reply STOP to opt out"  # every SMS and WhatsApp text ends with it
# The attempt that claimed a delivery: (job id, attempt). In doubt as soon as it no longer runs
# under a live lease (ombaro/messaging/reconcile.py).
Claimant = tuple[uuid.UUID, int]


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    user_id: Any
    channel: str
    email: str | None
    mobile: str | None
    name: str | None
    tier: str | None
    city: str | None
    device_token: str | None


@dataclass
class Runtime:
    """What sending needs: the database, the channel layer, the shared rate limit, the broker."""

    engine: Engine
    settings: Settings
    channels: Channels
    bucket: TokenBucket
    enqueue: Enqueue
    sleep: Callable[[float], None] = time.sleep
    max_inline_wait: float = 5.0  # longer waits end the job and continue in a delayed job
    max_attempts: int = MAX_ATTEMPTS
    claims: dict[str, Any] = field(default_factory=lambda: {"role": "worker", "sub": None})
    _transmitter: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def transmit_soon(self, sender: Sender, messages: Sequence[Message],
                      unreachable_ids: Sequence[tuple[int, str]] = ()) -> Future[Counter[str]]:
        """`transmit` on this runtime's background thread, so the caller claims the next batch while
        this one is sent and recorded. The caller waits for the result before it submits another
        batch, and before it ends: one batch in flight, each still claim -> call -> record."""
        if self._transmitter is None:  # created lazily: after Celery's fork, in the process that uses it
            self._transmitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transmit")
        context = contextvars.copy_context()  # the job's id reaches the thread's log lines
        return self._transmitter.submit(context.run, transmit, self, sender, messages, unreachable_ids)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A short transaction of its own, as the workers' role, committed on exit. What
        ombaro.db.act_as does, in one round trip (set_config('role', ..., true) is SET LOCAL ROLE):
        a campaign makes several of these per batch."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT set_config('role', :role, true), "
                              "set_config('request.jwt.claims', :claims, true)"),
                         {"role": WORKER_ROLE, "claims": self._claims_json})
            yield conn

    @property
    def _claims_json(self) -> str:
        return json.dumps(self.claims, default=str)

    def batch_size(self, sender: Sender) -> int:
        """Deliveries claimed at once: one request's worth for batching APIs, a few rounds of the
        thread pool for one-message-per-request APIs (so few rows wait in `sending`)."""
        if sender.per_request > 1:
            return sender.per_request
        return max(1, self.settings.messaging.provider_concurrency * 4)


def tokens_for(sender: Sender, rows: int) -> int:
    return -(-rows // sender.per_request)


RECIPIENTS_SQL = """
SELECT d.id, d.user_id, d.channel, d.campaign_id, d.event_id, d.sending_at,
       u.email, p.mobile, p.name, c.membership_tier AS tier, p.address ->> 'city' AS city,
       CASE WHEN d.channel = 'push' THEN
           (SELECT pd.token FROM push_devices AS pd WHERE pd.user_id = d.user_id AND pd.disabled_at IS NULL
            ORDER BY pd.last_seen_at DESC LIMIT 1) END AS device_token
FROM message_deliveries AS d
JOIN auth.users AS u ON u.id = d.user_id
LEFT JOIN user_profiles AS p ON p.id = d.user_id
LEFT JOIN customers AS c ON c.id = d.user_id
WHERE d.id = ANY(CAST(:ids AS bigint[]))
ORDER BY d.id
"""


@dataclass(frozen=True)
class Loaded:
    recipient: Recipient
    campaign_id: uuid.UUID | None
    event_id: int | None
    sending_at: dt.datetime | None


def load_recipients(conn: Connection, ids: Sequence[int]) -> list[Loaded]:
    rows = conn.execute(text(RECIPIENTS_SQL), {"ids": list(ids)}).mappings().all()
    return [Loaded(Recipient(r["id"], r["user_id"], r["channel"], r["email"], r["mobile"], r["name"], r["tier"],
                             r["city"], r["device_token"]), r["campaign_id"], r["event_id"], r["sending_at"])
            for r in rows]


def unreachable(r: Recipient) -> str | None:
    """Why the recipient cannot get this channel at all (checked before any provider call)."""
    if r.channel == "email" and not r.email:
        return "no email address"
    if r.channel in ("sms", "whatsapp") and not r.mobile:
        return "no mobile number"
    if r.channel == "push" and not r.device_token:
        return "no push device"
    return None


def transmit(rt: Runtime, sender: Sender, messages: Sequence[Message],
             unreachable_ids: Sequence[tuple[int, str]] = ()) -> Counter[str]:
    """Call the provider for claimed deliveries and record each outcome."""
    results = sender.send(messages) if messages else []
    outcome_of = {"in_app": "delivered"}  # stored is delivered for in-app messages
    counts = record(rt, sender.provider, results, messages=messages,
                    success=outcome_of.get(sender.provider, "sent"))
    if unreachable_ids:
        with rt.tx() as conn:
            fail(conn, unreachable_ids)
        counts["failed"] += len(unreachable_ids)
    return counts


def record(rt: Runtime, provider: str, results: Sequence[Result], *, messages: Sequence[Message] = (),
           success: str = "sent") -> Counter[str]:
    counts: Counter[str] = Counter()
    by_outcome: dict[str, list[Result]] = {}
    for result in results:
        by_outcome.setdefault(result.outcome, []).append(result)
        counts[result.outcome] += 1
    if not results:
        return counts
    with rt.tx() as conn:
        if sent := by_outcome.get("sent"):
            mark_sent(conn, [(int(r.ref), r.provider_id) for r in sent], status=success)
        if failed := by_outcome.get("failed"):
            fail(conn, [(int(r.ref), r.error or "refused by the provider") for r in failed])
            tokens = {m.ref: m.to for m in messages if m.to}
            dead = [tokens[r.ref] for r in failed if r.ref in tokens and (r.error or "").startswith("unregistered")]
            if dead:
                conn.execute(text("UPDATE push_devices SET disabled_at = now() "
                                  "WHERE token = ANY(CAST(:tokens AS text[])) AND disabled_at IS NULL"),
                             {"tokens": dead})
        if retry := by_outcome.get("retry"):
            # An attempt the sender did not make (it was waiting out a 429) is given back.
            gave_up = conn.execute(text(
                "UPDATE message_deliveries AS d SET "
                "attempts = d.attempts - CASE WHEN v.called THEN 0 ELSE 1 END, "
                "status = CASE WHEN v.called AND d.attempts >= :max THEN 'failed' ELSE 'pending' END, "
                "failed_at = CASE WHEN v.called AND d.attempts >= :max THEN now() END, "
                "error = CASE WHEN v.called AND d.attempts >= :max THEN 'gave up after ' || d.attempts || "
                "    ' attempts: ' ELSE '' END || v.error, "
                # Exponential backoff with jitter, or the provider's Retry-After plus up to 10%.
                "next_attempt_at = now() + make_interval(secs => coalesce(v.retry_after * (1 + random() / 10), "
                f"    least({BACKOFF_CAP_SECONDS}, power(2, d.attempts)) * (0.5 + random() / 2))), "
                "updated_at = now() "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[]), CAST(:after AS float8[]), "
                "            CAST(:called AS boolean[])) AS v(id, error, retry_after, called) "
                "WHERE d.id = v.id AND d.status = 'sending' RETURNING d.status"),
                {"ids": [int(r.ref) for r in retry], "errors": [r.error or "try again" for r in retry],
                 "after": [r.retry_after for r in retry], "called": [r.called for r in retry],
                 "max": rt.max_attempts}).scalars().all()
            counts["failed"] += sum(1 for s in gave_up if s == "failed")
        if unknown := by_outcome.get("unknown"):
            conn.execute(text(
                "UPDATE message_deliveries AS d SET status = 'unknown', error = v.error, updated_at = now() "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS v(id, error) "
                "WHERE d.id = v.id AND d.status = 'sending'"),
                {"ids": [int(r.ref) for r in unknown], "errors": [r.error or "no answer" for r in unknown]})
    pauses = [r.retry_after for r in by_outcome.get("retry", []) if r.retry_after]
    if pauses:  # every worker waits out the provider's Retry-After, not just this one
        rt.bucket.pause(provider, max(pauses))
    return counts


def mark_sent(conn: Connection, sent: Sequence[tuple[int, str | None]], *, status: str = "sent") -> None:
    """Accepted by the provider. A status a webhook already moved further is kept."""
    conn.execute(text(
        "UPDATE message_deliveries AS d SET "
        "status = CASE WHEN d.status IN ('pending', 'sending', 'unknown') THEN :status ELSE d.status END, "
        "provider_message_id = coalesce(d.provider_message_id, v.pid), sent_at = coalesce(d.sent_at, now()), "
        "delivered_at = CASE WHEN :status = 'delivered' THEN coalesce(d.delivered_at, now()) "
        "    ELSE d.delivered_at END, "
        "error = NULL, updated_at = now() "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:pids AS text[])) AS v(id, pid) WHERE d.id = v.id"),
        {"ids": [i for i, _ in sent], "pids": [p for _, p in sent], "status": status})


def fail(conn: Connection, failed: Sequence[tuple[int, str]]) -> None:
    conn.execute(text(
        "UPDATE message_deliveries AS d SET status = 'failed', error = v.error, failed_at = now(), updated_at = now() "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS v(id, error) "
        "WHERE d.id = v.id AND d.status IN ('pending', 'sending', 'unknown')"),
        {"ids": [i for i, _ in failed], "errors": [e[:1000] for _, e in failed]})


def take_tokens(rt: Runtime, sender: Sender, rows: int, *, on_wait: Callable[[], None] | None = None,
                ) -> tuple[int, float]:
    """(rows this worker may send now, 0) or (0, seconds to wait) when the wait is too long to
    spend here. Short waits are slept through (they are the rate limit doing its job)."""
    want = tokens_for(sender, rows)
    while True:
        granted, wait = rt.bucket.take(sender.provider, want)
        if granted:
            return min(rows, granted * sender.per_request), 0.0
        if wait > rt.max_inline_wait:
            return 0, wait
        if on_wait:
            on_wait()
        rt.sleep(max(wait, 0.001))


def delay_job(conn: Connection, job_id: uuid.UUID, run_after: dt.datetime) -> None:
    """A job submitted with a no-op enqueue waits in PostgreSQL until `run_after`; the relay hands
    it to the broker when it is due (design: delayed work never sits in the broker)."""
    conn.execute(text("UPDATE jobs SET run_after = :at, enqueued_at = NULL WHERE id = :id AND status = 'queued'"),
                 {"at": run_after, "id": job_id})


def no_enqueue(_job_id: uuid.UUID, _kind: str) -> None:
    """For jobs submitted to run later: the relay enqueues them when due."""
