"""Issue 13, "a settlement paid twice": payouts against a provider that ignores X-Payout-Idempotency,
with more than 100 other transfers made while the outcome was unknown, through the real Razorpay
SDK against the local server; and a real Celery worker SIGKILLed between the provider's creation
of the transfer and its answer. Exactly one transfer at the provider, one payout in the database
carrying that transfer's id, or a payout held (never paid again) when nothing can be decided."""

from __future__ import annotations

import signal
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.commands import RetryLater
from ombaro.providers.razorpay import RazorpayProvider
from ombaro.settlements import payouts
from tests.factories.payments import approved_settlement
from tests.helpers import job_row, wait_until
from tests.payments.helpers import WEBHOOK_SECRET, provider_env
from tests.payments.payouts import request, send, state
from tests.payments.razorpay_server import KEY_ID, KEY_SECRET, FakeRazorpay
from tests.services import Database, Process, start_worker
from tests.settlements.helpers import as_worker
from workers.app import enqueuer


def payout_row(engine: Engine, payout: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM payouts WHERE id = :id"), {"id": payout}).mappings().one())


def latest_hundred_ids(razorpay: FakeRazorpay) -> set[str]:
    """What the old look-up saw: the provider's latest 100 transfers, one page."""
    status, page = razorpay.handle("GET", "/v1/transfers", {}, {}, {"count": "100"})
    assert status == 200
    return {t["id"] for t in page["items"]}


@pytest.mark.parametrize("fault", ["timeout_after_success", "drop_after_success"])
def test_unanswered_send_then_100_other_transfers_is_found_by_paginated_lookup_and_paid_once(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider, fault: str) -> None:
    settlement = approved_settlement(settle_engine, amount="1071953.64")
    payout = request(settle_engine, settlement)
    key = payout_row(settle_engine, payout)["idempotency_key"]
    razorpay.mode, razorpay.honour_idempotency = fault, False
    with pytest.raises(RetryLater, match="outcome unknown"):
        send(settle_engine, provider, payout)
    [made] = razorpay.transfers_with_key(key)  # the provider paid; we were not told
    row = payout_row(settle_engine, payout)
    assert (row["status"], row["sends"], row["provider_transfer_id"]) == ("sending", 1, None)
    assert row["first_sent_at"] is not None

    razorpay.mode = "normal"
    razorpay.other_transfers(150)  # other payouts made while the job waited for its retry
    assert made["id"] not in latest_hundred_ids(razorpay)  # the old look-up would have paid again

    asked = len(razorpay.requests)
    assert send(settle_engine, provider, payout) == "processed"
    assert len(razorpay.transfers_with_key(key)) == 1
    row = payout_row(settle_engine, payout)
    assert (row["status"], row["provider_transfer_id"], row["sends"]) == ("processed", made["id"], 1)
    assert state(settle_engine, settlement) == ("completed", [(1, "processed", None)])
    # No second POST: the run looked the transfer up, paging with Razorpay's parameters from a
    # window opening before the first send.
    calls = list(zip(razorpay.requests[asked:], razorpay.queries[asked:], strict=True))
    assert all(call == ("GET", "/v1/transfers") for call, _ in calls)
    assert [q["skip"] for _, q in calls] == ["0", "100"] and {q["count"] for _, q in calls} == {"100"}
    assert {int(q["from"]) for _, q in calls} == {int(row["first_sent_at"].timestamp()) - 300}


def test_send_with_no_answer_and_no_transfer_is_held_not_sent_again(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    key = payout_row(settle_engine, payout)["idempotency_key"]
    razorpay.honour_idempotency = False
    razorpay.mode = "timeout_after_success"
    with pytest.raises(RetryLater, match="outcome unknown"):
        send(settle_engine, provider, payout)
    # The provider has not made it (yet): a request still in flight there looks exactly like this.
    [made] = razorpay.transfers_with_key(key)
    razorpay.transfers.remove(made)
    razorpay.mode = "normal"

    assert send(settle_engine, provider, payout) == "held"
    row = payout_row(settle_engine, payout)
    assert row["status"] == "held" and "not sent again" in row["hold_reason"] and row["sends"] == 1
    # Finance asks again: the same attempt, looked up again, still held; nothing is sent.
    asked = len(razorpay.requests)
    assert request(settle_engine, settlement) == payout
    assert send(settle_engine, provider, payout) == "held"
    assert razorpay.transfers_with_key(key) == []
    assert ("POST", "/v1/transfers") not in razorpay.requests[asked:]

    # The reconciler does not decide while the send is recent (a request may still land) ...
    counts = as_worker(settle_engine, lambda s: payouts.reconcile(s, provider, pending_after_seconds=3600))
    assert payout_row(settle_engine, payout)["status"] == "held" and counts["failed"] == 0
    # ... and the late request does land: found, recorded, one transfer.
    razorpay.transfers.append(made)
    razorpay.other_transfers(120)
    as_worker(settle_engine, lambda s: payouts.reconcile(s, provider, pending_after_seconds=0))
    row = payout_row(settle_engine, payout)
    assert (row["status"], row["provider_transfer_id"]) == ("processed", made["id"])
    assert state(settle_engine, settlement)[0] == "completed"


def test_held_payout_never_made_is_failed_by_the_reconciler_and_finance_pays_a_new_attempt(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    settlement = approved_settlement(settle_engine)
    first = request(settle_engine, settlement)
    razorpay.honour_idempotency = False
    razorpay.mode = "drop_after_success"
    with pytest.raises(RetryLater):
        send(settle_engine, provider, first)
    for made in razorpay.transfers_with_key(payout_row(settle_engine, first)["idempotency_key"]):
        razorpay.transfers.remove(made)  # it was never made after all
    razorpay.mode = "normal"
    assert send(settle_engine, provider, first) == "held"
    razorpay.other_transfers(230)
    counts = as_worker(settle_engine, lambda s: payouts.reconcile(s, provider, pending_after_seconds=0))
    assert counts["failed"] >= 1
    status, attempts = state(settle_engine, settlement)
    assert status == "failed" and attempts[0][1] == "failed" and "never made" in attempts[0][2]
    second = request(settle_engine, settlement)
    assert second != first
    assert send(settle_engine, provider, second) == "processed"
    keys = [t["notes"]["idempotency_key"] for t in razorpay.transfers
            if t["notes"].get("settlement_id") == str(settlement)]
    assert keys == [f"stl_{settlement.hex}_2"]


def test_provider_not_reached_leaves_the_attempt_pending_and_the_same_key_is_sent_later(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = RazorpayProvider(key_id=KEY_ID, key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET,
                                   base_url=closed, timeout_seconds=0.5)
    with pytest.raises(RetryLater, match="not reached"):
        send(settle_engine, unreachable, payout)
    row = payout_row(settle_engine, payout)
    assert (row["status"], row["sends"]) == ("pending", 1)
    assert send(settle_engine, provider, payout) == "processed"
    assert len(razorpay.transfers_with_key(row["idempotency_key"])) == 1


def test_a_second_run_during_the_first_ones_call_looks_and_never_sends_again(
        settle_engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    """Two runs of one attempt at once (finance asked twice): the second finds the send on record
    while the first one's answer is held back; it looks the transfer up and makes no second one."""
    settlement = approved_settlement(settle_engine)
    payout = request(settle_engine, settlement)
    razorpay.honour_idempotency = False
    razorpay.mode = "pause_after_success"
    first_outcome: list[BaseException | str] = []

    def first_run() -> None:
        try:
            first_outcome.append(send(settle_engine, provider, payout))
        except RetryLater as exc:
            first_outcome.append(exc)

    first = threading.Thread(target=first_run)
    first.start()
    assert razorpay.created.wait(10)
    asked = len(razorpay.requests)
    assert send(settle_engine, provider, payout) == "processed"
    assert ("POST", "/v1/transfers") not in razorpay.requests[asked:]
    razorpay.release.set()
    first.join(10)
    # Its answer came in time (nothing left to record) or after its 0.5 s timeout (a retry will look).
    assert first_outcome[0] == "processed" or isinstance(first_outcome[0], RetryLater), first_outcome
    key = payout_row(settle_engine, payout)["idempotency_key"]
    [made] = razorpay.transfers_with_key(key)
    assert payout_row(settle_engine, payout)["provider_transfer_id"] == made["id"]
    razorpay.mode = "normal"
    assert send(settle_engine, provider, payout) == "processed"  # the first job's retry: nothing to do
    assert len(razorpay.transfers_with_key(key)) == 1


def test_worker_killed_between_the_providers_transfer_and_its_answer_recovers_to_one_payout(
        own_database: Callable[[], Database], spawn: Callable[..., Process], redis_url: str,
        razorpay: FakeRazorpay) -> None:
    database = own_database()
    engine = database.engine
    settlement = approved_settlement(engine, amount="1071953.64")
    payout = request(engine, settlement)
    key = payout_row(engine, payout)["idempotency_key"]
    send_to_broker = enqueuer(redis_url)
    with Session(engine) as session, session.begin():
        job = commands.submit(session, payouts.PAYOUT_KIND, {"payout_id": str(payout)}, enqueue=send_to_broker).job.id

    razorpay.honour_idempotency = False
    razorpay.mode = "pause_after_success"
    env = {**provider_env(razorpay), "DATABASE_URL": database.url, "OMBARO_JOB_LEASE_SECONDS": "3",
           "RAZORPAY_TIMEOUT_SECONDS": "120"}
    doomed = start_worker(spawn, "doomed", concurrency=1, env=env)

    def transfer_made() -> bool:
        with Session(engine) as session, session.begin():  # the test Redis is shared: re-send lost messages
            commands.relay(session, send_to_broker, stale_seconds=2)
        return razorpay.created.is_set()

    wait_until(transfer_made, timeout=60, interval=0.2, what="the provider to make the transfer")
    doomed.stop(signal.SIGKILL)  # the answer never reaches the worker
    razorpay.release.set()
    row = payout_row(engine, payout)
    assert (row["status"], row["sends"], row["provider_transfer_id"]) == ("sending", 1, None)
    assert len(razorpay.transfers_with_key(key)) == 1
    razorpay.mode = "normal"
    razorpay.other_transfers(150)  # 100+ other payouts while the job waits out its lease

    start_worker(spawn, "rescuer", concurrency=1, env=env)

    def finished() -> dict[str, Any] | None:
        with Session(engine) as session, session.begin():  # stands in for the scheduler's relay
            commands.relay(session, send_to_broker, stale_seconds=0)
        found = job_row(engine, job)
        return found if found["status"] in ("succeeded", "failed") else None

    done = wait_until(finished, timeout=90, interval=0.5, what="the payout job to finish after the restart")
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    [made] = razorpay.transfers_with_key(key)
    row = payout_row(engine, payout)
    assert (row["status"], row["provider_transfer_id"], row["sends"]) == ("processed", made["id"], 1)
    with engine.connect() as conn:
        payouts_made = conn.execute(text("SELECT count(*) FROM payouts WHERE settlement_id = :s"),
                                    {"s": settlement}).scalar_one()
        reference = conn.execute(text("SELECT payment_reference FROM payment_settlements WHERE id = :s"),
                                 {"s": settlement}).scalar_one()
    assert payouts_made == 1 and reference == made["id"]
