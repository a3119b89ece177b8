"""Paying settlements through the real Razorpay SDK against the local server: a timeout after
success, a 5xx, a refusal, a throttle, and the reconciler; never a second transfer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.commands import RetryLater
from ombaro.providers.razorpay import RazorpayProvider
from ombaro.settlements import payouts
from tests.factories.payments import approved_settlement
from tests.payments.payouts import request, send, state
from tests.payments.razorpay_server import FakeRazorpay
from tests.settlements.helpers import as_worker


def transfers_for(razorpay: FakeRazorpay, settlement: uuid.UUID) -> list[dict]:
    return [t for t in razorpay.transfers if t["notes"].get("settlement_id") == str(settlement)]


@pytest.mark.parametrize("provider_dedupes", [False, True], ids=["our-lookup", "provider-key"])
def test_timeout_after_success_then_retry_pays_once(settle_engine: Engine, razorpay: FakeRazorpay,
                                                    provider: RazorpayProvider, provider_dedupes: bool) -> None:
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    razorpay.mode, razorpay.honour_idempotency = "timeout_after_success", provider_dedupes
    with pytest.raises(RetryLater, match="outcome unknown"):
        send(settle_engine, provider, payout)
    assert len(transfers_for(razorpay, settlement)) == 1  # the provider did pay
    # We do not know that yet; the send is on record (committed before the call).
    assert state(settle_engine, settlement) == ("processing", [(1, "sending", None)])

    razorpay.mode = "normal"
    # The job's next run looks the transfer up by its key; it never re-sends after an unknown outcome.
    assert send(settle_engine, provider, payout) == "processed"
    assert len(transfers_for(razorpay, settlement)) == 1
    assert state(settle_engine, settlement) == ("completed", [(1, "processed", None)])
    with settle_engine.connect() as conn:
        reference = conn.execute(text("SELECT payment_reference FROM payment_settlements WHERE id = :id"),
                                 {"id": settlement}).scalar_one()
    assert reference == transfers_for(razorpay, settlement)[0]["id"]


@pytest.mark.parametrize("mode", ["5xx", "429"])
def test_5xx_or_throttle_leaves_the_settlement_retryable(settle_engine: Engine, razorpay: FakeRazorpay,
                                                         provider: RazorpayProvider, mode: str) -> None:
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    razorpay.mode = mode
    with pytest.raises(RetryLater):
        send(settle_engine, provider, payout)
    assert transfers_for(razorpay, settlement) == []
    assert state(settle_engine, settlement) == ("processing", [(1, "pending", None)])
    # Finance may ask again: the same attempt (same key) is re-sent, not a new one.
    assert request(settle_engine, settlement) == payout
    razorpay.mode = "normal"
    assert send(settle_engine, provider, payout) == "processed"
    assert len(transfers_for(razorpay, settlement)) == 1
    assert state(settle_engine, settlement)[0] == "completed"


def test_refusal_is_recorded_with_the_reason_and_a_retry_is_a_new_attempt(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    settlement = approved_settlement(settle_engine)
    first = request(settle_engine, settlement)
    razorpay.mode = "reject"
    assert send(settle_engine, provider, first) == "failed"
    assert state(settle_engine, settlement) == ("failed", [(1, "failed", "The linked account is not activated")])
    razorpay.mode = "normal"
    second = request(settle_engine, settlement)
    assert second != first
    assert send(settle_engine, provider, second) == "processed"
    assert state(settle_engine, settlement) == (
        "completed", [(1, "failed", "The linked account is not activated"), (2, "processed", None)])
    keys = {t["notes"]["idempotency_key"] for t in transfers_for(razorpay, settlement)}
    assert keys == {f"stl_{settlement.hex}_2"}


def test_reconciler_settles_payouts_of_unknown_outcome(settle_engine: Engine, razorpay: FakeRazorpay,
                                                       provider: RazorpayProvider) -> None:
    paid, never_sent = approved_settlement(settle_engine), approved_settlement(settle_engine)
    paid_payout = request(settle_engine, paid)
    request(settle_engine, never_sent)
    razorpay.mode = "timeout_after_success"
    with pytest.raises(RetryLater):
        send(settle_engine, provider, paid_payout)
    razorpay.mode = "normal"
    # Both attempts are pending and no job will retry them (their jobs gave up; the other never ran).
    counts = as_worker(settle_engine, lambda s: payouts.reconcile(s, provider, pending_after_seconds=0))
    assert counts["processed"] >= 1 and counts["failed"] >= 1
    assert state(settle_engine, paid) == ("completed", [(1, "processed", None)])
    status, attempts = state(settle_engine, never_sent)
    assert status == "failed" and attempts[0][1] == "failed" and "never made" in (attempts[0][2] or "")
    assert len(transfers_for(razorpay, paid)) == 1 and transfers_for(razorpay, never_sent) == []


def test_transfer_webhooks_only_move_forward(settle_engine: Engine, razorpay: FakeRazorpay,
                                             provider: RazorpayProvider) -> None:
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    razorpay.transfer_status = "pending"
    assert send(settle_engine, provider, payout) == "processing"
    transfer = transfers_for(razorpay, settlement)[0]
    entity = {**transfer, "status": "processed"}
    assert as_worker(settle_engine, lambda s: payouts.transfer_event(s, "transfer.processed", entity)) \
        == "payout processed"
    # A late, out-of-order failure changes nothing.
    as_worker(settle_engine, lambda s: payouts.transfer_event(s, "transfer.failed", {**transfer, "status": "failed"}))
    assert state(settle_engine, settlement) == ("completed", [(1, "processed", None)])


def test_a_transfer_event_before_its_payout_knows_the_transfer_is_parked_then_applied_by_the_sweep(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    """The transfer is made, its answer lost (the payout does not know its id), and its event
    arrives without our key in its notes: nothing names a payout of ours, so the event is parked on
    the transfer, not marked done. The reconciler records the transfer; the sweep then applies the
    event. One transfer, one processed payout, nothing left parked."""
    from ombaro.payments import webhooks as payment_webhooks

    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    razorpay.mode = "timeout_after_success"
    with pytest.raises(RetryLater):
        send(settle_engine, provider, payout)
    razorpay.mode = "normal"
    [transfer] = transfers_for(razorpay, settlement)
    entity = {**transfer, "status": "processed", "notes": {}}
    body = {"entity": "event", "event": "transfer.processed", "payload": {"transfer": {"entity": entity}},
            "created_at": 1764150000}

    def deliver(session: Any) -> tuple[uuid.UUID, str]:
        recorded = payment_webhooks.record_event(session, provider="razorpay", event_id=f"evt_{uuid.uuid4().hex[:14]}",
                                                 event_type="transfer.processed", payload=body)
        return recorded.id, payment_webhooks.handle_event(session, recorded)

    event_id, outcome = as_worker(settle_engine, deliver)
    assert outcome == f"parked: transfer {transfer['id']} is unknown here"

    def event_state() -> tuple[str | None, bool, str]:
        with settle_engine.connect() as conn:
            return tuple(conn.execute(text("SELECT parked_on, processed_at IS NOT NULL, outcome FROM webhook_events "
                                           "WHERE id = :e"), {"e": event_id}).one())

    as_worker(settle_engine, lambda s: payment_webhooks.sweep_parked(s))
    assert event_state()[:2] == (transfer["id"], False)  # the sweep leaves it: still unknown
    as_worker(settle_engine, lambda s: payouts.reconcile(s, provider, pending_after_seconds=0))
    as_worker(settle_engine, lambda s: payment_webhooks.sweep_parked(s))
    parked_on, done, outcome = event_state()
    assert (parked_on, done) == (None, True) and outcome.startswith("payout")
    assert state(settle_engine, settlement) == ("completed", [(1, "processed", None)])
    assert len(transfers_for(razorpay, settlement)) == 1
