"""The payout steps as the payout job takes them (request, send) and a settlement's payout state,
each in a transaction as the workers' role."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from ombaro.providers.razorpay import RazorpayProvider
from ombaro.settlements import payouts
from tests.settlements.helpers import as_worker


def request(engine: Engine, settlement: uuid.UUID) -> uuid.UUID:
    return as_worker(engine, lambda s: payouts.request_payout(s, settlement, provider="razorpay",
                                                              requested_by=None).id)


def send(engine: Engine, provider: RazorpayProvider, payout: uuid.UUID) -> str:
    """One run of the payout job: the send recorded and committed first, the outcome after."""
    return as_worker(engine, lambda s: payouts.send_payout(s, provider, payout, job_id=None,
                                                           committed=lambda work: as_worker(engine, work)))


def state(engine: Engine, settlement: uuid.UUID) -> tuple[str, list[tuple[int, str, str | None]]]:
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM payment_settlements WHERE id = :id"),
                              {"id": settlement}).scalar_one()
        attempts = conn.execute(text("SELECT attempt, status, failure_reason FROM payouts WHERE settlement_id = :id "
                                     "ORDER BY attempt"), {"id": settlement}).all()
    return status, [tuple(a) for a in attempts]
