"""The campaign tests' provider settings and webhook signing, and their job runner: queued campaign and
notification jobs executed through the real command log in this process, and a relay thread."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands, notifications
from ombaro.campaigns import reconcile, sending
from ombaro.messaging import Runtime
from ombaro.models.jobs import Job

TWILIO_SID = "AC" + "0" * 30
TWILIO_TOKEN = "twilio-auth-token-for-tests"
PUBLIC_BASE = "https://ops.ombaro.test"


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sign_sendgrid(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


# The declared handlers' calls (ombaro/campaigns/commands.py, ombaro/notifications_commands.py)
# with this test's runtime (its providers) instead of the worker process's.
HANDLERS: dict[str, Callable[[Session, Runtime, commands.JobRef, commands.Progress, Any], dict[str, Any]]] = {
    sending.KIND_START: lambda s, rt, job, progress, p: sending.start(
        s, rt, job, progress, campaign_id=p.campaign_id, chunk_size=p.chunk_size),
    sending.KIND_CHUNK: lambda s, rt, job, progress, p: sending.send_chunk(
        s, rt, job, progress, campaign_id=p.campaign_id, after=p.after, upto=p.upto,
        materialize_first=p.materialize is not False),
    "campaigns.start_due": lambda s, rt, job, progress, p: sending.start_due(s, rt, job, progress),
    notifications.KIND_DISPATCH: lambda s, rt, job, progress, p: notifications.dispatch(s, rt, job, progress),
    "notifications.reminders": lambda s, rt, job, progress, p: notifications.scan_reminders(s, rt, job, progress),
}


def execute(rt: Runtime, job_id: uuid.UUID) -> str:
    """Run one job in this process as a worker would: its params loaded by the kind's declared schema."""
    with rt.engine.connect() as conn:
        kind = conn.execute(text("SELECT kind FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()

    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        if kind == "campaigns.reconcile":
            return reconcile.reconcile(rt)
        ref = commands.JobRef(id=job.id, kind=job.kind, params=dict(job.params or {}), requested_by=job.requested_by,
                              scheduled_for=job.scheduled_for, attempts=job.attempts)
        return HANDLERS[kind](session, rt, ref, progress, commands.command_of(kind).load(ref.params))

    return commands.execute(job_id, handler, engine=rt.engine, lease_seconds=60)


def submit(rt: Runtime, kind: str, params: dict[str, Any], *, key: str | None = None,
           scope: str = "tests") -> uuid.UUID:
    with Session(rt.engine) as session, session.begin():
        return commands.submit(session, kind, params, enqueue=rt.enqueue, key=key, scope=scope).job.id


def run_queued(rt: Runtime, campaign_id: uuid.UUID | None = None, *, until_idle: bool = True,
               timeout: float = 60) -> list[tuple[str, str]]:
    """Execute the queued jobs (of one campaign, or of every campaign and notification kind) whose
    time has come, in order, until none is left that is due. Returns (kind, outcome)."""
    ran = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.engine.connect() as conn:
            where = "idempotency_scope = :scope" if campaign_id else "(kind LIKE 'campaigns.%' OR kind LIKE " \
                "'notifications.%')"
            row = conn.execute(text(
                f"SELECT id, kind FROM jobs WHERE status = 'queued' AND run_after <= now() AND {where} "
                "ORDER BY created_at LIMIT 1"), {"scope": sending.scope(campaign_id) if campaign_id else None}).first()
        if row is None:
            if not until_idle:
                break
            break
        ran.append((row.kind, execute(rt, row.id)))
    return ran


def deliveries(engine: Engine, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT * FROM message_deliveries WHERE campaign_id = :c ORDER BY user_id, channel"),
            {"c": campaign_id}).mappings()]


def start_and_run(rt: Runtime, campaign_id: uuid.UUID, *, chunk_size: int | None = None) -> list[tuple[str, str]]:
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, rt.enqueue, campaign_id, key=f"test:{uuid.uuid4()}", chunk_size=chunk_size)
    return run_queued(rt, campaign_id)


def with_settings(rt: Runtime, **messaging: Any) -> Runtime:
    settings = replace(rt.settings, messaging=replace(rt.settings.messaging, **messaging))
    return replace(rt, settings=settings)


class Relay:
    """What the scheduler's leader does every 10 s, every 0.3 s here: hand due jobs to the broker."""

    def __init__(self, engine: Engine, redis_url: str, *, stale_seconds: int = 2) -> None:
        from workers.app import enqueuer

        self.engine, self.enqueue, self.stale = engine, enqueuer(redis_url), stale_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                with Session(self.engine) as session, session.begin():
                    commands.relay(session, self.enqueue, stale_seconds=self.stale)
            except Exception:  # a relay tick failing is retried at the next tick, as in the scheduler
                time.sleep(0.3)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)
