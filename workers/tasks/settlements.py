"""Payments and settlements tasks: one domain call each (docs/settlements.md).

Kinds: `settlements.run` (dry run, or plan a run into batches), `settlements.run_batch` (settle a
batch of vendors in one transaction), `settlements.payout` (send one payout attempt),
`settlements.reconcile` (ask the provider about payouts of unknown outcome; apply the parked
webhook events whose entity appeared, flag the overdue ones), `payments.webhook`
(apply a recorded Razorpay event) and `payments.refund` (ask the provider for a recorded refund).
`payments.*` has no route of its own in workers/app.py and lands in `bulk`, the default queue.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from ombaro import commands, payment_webhooks, payments
from ombaro.config import load_settings
from ombaro.db import WORKER_ROLE, committed_as, get_engine
from ombaro.models.jobs import Job
from ombaro.models.settlements import WebhookEvent
from ombaro.providers import payment_provider
from ombaro.settlements import payouts, runs
from workers.app import celery, enqueue
from workers.tasks import run


@celery.task(name="settlements.run")
def run_settlements(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        settings = load_settings()
        period = runs.period_of(job.params, job.scheduled_for, settings.timezone)
        vendor_ids = [uuid.UUID(v) for v in job.params["vendor_ids"]] if job.params.get("vendor_ids") else None
        if job.params.get("dry_run"):
            return runs.dry_run(session, period, vendor_ids, zone=settings.timezone)
        return runs.start_run(session, job, period, vendor_ids, batch_size=settings.settlement_batch_vendors,
                              enqueue=enqueue)

    return run(job_id, handler)


@celery.task(name="settlements.run_batch")
def settle_batch(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        zone = load_settings().timezone
        return runs.settle_batch(session, run_id=uuid.UUID(job.params["run_id"]),
                                 period=runs.period_of(job.params, None, zone),
                                 vendor_ids=[uuid.UUID(v) for v in job.params["vendor_ids"]],
                                 requested_by=job.requested_by, zone=zone, progress=progress)

    return run(job_id, handler)


@celery.task(name="settlements.payout")
def send_payout(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        payout_id = uuid.UUID(job.params["payout_id"])
        # The send is recorded in a transaction of its own, committed before the provider is called.
        committed = committed_as(get_engine(), WORKER_ROLE, {"role": "worker", "job": str(job.id), "sub": (
            str(job.requested_by) if job.requested_by else None)})
        status = payouts.send_payout(session, payment_provider(load_settings()), payout_id, job_id=job.id,
                                     committed=committed)
        return {"payout_id": str(payout_id), "status": status}

    return run(job_id, handler)


@celery.task(name="settlements.reconcile")
def reconcile_payouts(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        counts = payouts.reconcile(session, payment_provider(load_settings()),
                                   pending_after_seconds=int(job.params.get("pending_after_seconds", 600)))
        overdue = dt.timedelta(seconds=int(job.params.get("parked_overdue_after_seconds", 3600)))
        return {**counts, "webhooks": payment_webhooks.sweep_parked(session, overdue_after=overdue)}

    return run(job_id, handler)


@celery.task(name="payments.webhook")
def apply_webhook(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        event = session.get_one(WebhookEvent, uuid.UUID(job.params["webhook_event_id"]), with_for_update=True)
        outcome = payment_webhooks.handle_event(session, event)
        return {"event": event.event_id, "type": event.event_type, "outcome": outcome}

    return run(job_id, handler)


@celery.task(name="payments.refund")
def send_refund(job_id: str) -> str:
    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        refund_id = uuid.UUID(job.params["refund_id"])
        status = payments.send_refund(session, payment_provider(load_settings()), refund_id,
                                      look_first=job.attempts > 1)
        return {"refund_id": str(refund_id), "status": status}

    return run(job_id, handler)
