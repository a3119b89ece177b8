"""Issue 13, "a refund lost", and issue 12's replay: Razorpay webhooks converge whatever their order
and concurrency, and a signed event replayed under a new (or no) event id is a duplicate.

Every order of payment.authorized / payment.captured / payment.failed (an earlier attempt on the
same order) / refund.processed is delivered to the real endpoint, one after another and from
threads at once, and applied (in that order, and concurrently); the final state is the same for
all 24 orders: captured, partly refunded, one processed refund, nothing left parked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ombaro import commands, metrics
from ombaro.models.settlements import WebhookEvent
from ombaro.payments import webhooks as payment_webhooks
from tests.factories.accounts import Account
from tests.factories.payments import checkout
from tests.helpers import wait_until
from tests.payments.helpers import WEBHOOK_SECRET, as_worker, event, post_event, row, serving
from tests.services import Process, start_worker
from workers.app import enqueuer

KINDS = ("payment.authorized", "payment.captured", "payment.failed", "refund.processed")
REFUND_PAISE = 92050  # ₹920.50 of the ₹2,920.50 booking


def refund_event(refund_id: str, payment_id: str, amount: int) -> bytes:
    body = {"entity": "event", "account_id": "acc_local", "event": "refund.processed", "contains": ["refund"],
            "payload": {"refund": {"entity": {"id": refund_id, "entity": "refund", "amount": amount,
                                              "currency": "INR", "payment_id": payment_id, "notes": {},
                                              "status": "processed", "created_at": 1764153600}}},
            "created_at": 1764153600}
    return json.dumps(body, separators=(",", ":")).encode()


def bodies(order: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, str]]:
    """The four events of one order: the failed one is an earlier attempt (another payment id)."""
    ids = {"paid": f"pay_{secrets.token_hex(7)}", "failed": f"pay_{secrets.token_hex(7)}",
           "refund": f"rfnd_{secrets.token_hex(7)}"}
    made = {"payment.authorized": event("payment.authorized", order["order_id"], ids["paid"], order["amount"]),
            "payment.captured": event("payment.captured", order["order_id"], ids["paid"], order["amount"]),
            "payment.failed": event("payment.failed", order["order_id"], ids["failed"], order["amount"]),
            "refund.processed": refund_event(ids["refund"], ids["paid"], REFUND_PAISE)}
    return made, ids


def signed_headers(body: bytes) -> dict[str, str]:
    return {"X-Razorpay-Signature": hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest(),
            "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(7)}", "Content-Type": "application/json"}


def apply(engine: Engine, event_id: str) -> str:
    """What the `payments.webhook` job does: lock the event row, apply it."""
    def work(session: Any) -> str:
        recorded = session.scalars(select(WebhookEvent).where(WebhookEvent.event_id == event_id)
                                   .with_for_update()).one()
        return payment_webhooks.handle_event(session, recorded)

    return as_worker(engine, work)


def final_state(engine: Engine, order: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """What must converge, with this order's provider ids replaced by their roles."""
    roles = {v: k for k, v in ids.items()}
    payment = row(engine, "SELECT status, refund_amount, gateway_transaction_id, payment_date, payment_method, "
                          "booking_id FROM payments WHERE id = :p", p=order["payment_id"])
    booking = row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=payment.booking_id)[0]
    with engine.connect() as conn:
        refunds = [(r.amount, r.status, roles.get(r.gateway_refund_id, r.gateway_refund_id)) for r in conn.execute(
            text("SELECT amount, status, gateway_refund_id FROM payment_refunds WHERE payment_id = :p"),
            {"p": order["payment_id"]})]
        unsettled = conn.execute(text(
            "SELECT count(*) FROM webhook_events WHERE (parked_on IS NOT NULL OR processed_at IS NULL) "
            "AND (payload::text LIKE '%' || :a || '%' OR payload::text LIKE '%' || :b || '%')"),
            {"a": ids["paid"], "b": ids["failed"]}).scalar_one()
    return {"status": payment.status, "refund_amount": payment.refund_amount,
            "gateway_payment": roles.get(payment.gateway_transaction_id, payment.gateway_transaction_id),
            "payment_date": payment.payment_date.timestamp() if payment.payment_date else None,
            "method": payment.payment_method, "booking": booking, "refunds": refunds,
            "events_waiting": unsettled}


EXPECTED = {"status": "partially_refunded", "refund_amount": Decimal("920.50"),
            "gateway_payment": "paid", "payment_date": 1764150000.0, "method": "debit_card", "booking": "partial",
            "refunds": [(Decimal("920.50"), "processed", "refund")], "events_waiting": 0}


def test_refund_before_capture_is_parked_then_applied_and_the_booking_is_not_left_paid(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    """The issue's case: refund.processed first (no payment.authorized before it), then the capture."""
    _, order = checkout(rzp_app, engine, people)
    made, ids = bodies(order)
    for kind in ("refund.processed", "payment.captured"):
        answer = post_event(rzp_app, made[kind])
        assert answer.status_code == 200 and answer.json["status"] == "accepted"
        outcome = apply(engine, answer.json["event_id"])
        if kind == "refund.processed":
            assert outcome.startswith("parked")
            assert row(engine, "SELECT count(*) FROM payment_refunds WHERE payment_id = :p",
                       p=order["payment_id"])[0] == 0
    assert "refund processed" in outcome  # the capture applied the parked refund
    state = final_state(engine, order, ids)
    assert (state["status"], state["booking"], state["refunds"], state["events_waiting"]) == (
        "partially_refunded", "partial", EXPECTED["refunds"], 0)


@pytest.mark.parametrize("order_of_kinds", list(itertools.permutations(KINDS)), ids=lambda p: ">".join(
    k.split(".")[1] for k in p))
def test_every_order_applied_one_by_one_converges(rzp_app: Any, engine: Engine, people: dict[str, Account],
                                                  order_of_kinds: tuple[str, ...]) -> None:
    _, order = checkout(rzp_app, engine, people)
    made, ids = bodies(order)
    for kind in order_of_kinds:
        answer = post_event(rzp_app, made[kind])
        assert answer.status_code == 200, answer.json
        apply(engine, answer.json["event_id"])
    assert final_state(engine, order, ids) == EXPECTED


def run_at_once(target: Any, items: list[tuple[Any, ...]]) -> None:
    threads = [threading.Thread(target=target, args=item) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def deliver_and_apply_at_once(base: str, engine: Engine, made: dict[str, bytes], order_of_kinds: tuple[str, ...],
                              errors: list[str]) -> None:
    """Threads post the events to the real endpoint at once (started in this order, 2 ms apart),
    then threads apply them at once, as concurrent jobs would."""
    event_ids: list[str] = []
    delivering = threading.Barrier(len(order_of_kinds))

    def deliver(kind: str, delay: float) -> None:
        delivering.wait()
        time.sleep(delay)
        answer = requests.post(f"{base}/api/v1/webhooks/razorpay", data=made[kind],
                               headers=signed_headers(made[kind]), timeout=30)
        if answer.status_code != 200 or answer.json()["status"] != "accepted":
            errors.append(f"{kind}: {answer.status_code} {answer.text}")
        else:
            event_ids.append(answer.json()["event_id"])

    run_at_once(deliver, [(kind, 0.002 * i) for i, kind in enumerate(order_of_kinds)])
    applying = threading.Barrier(len(event_ids))

    def apply_at_once(event_id: str) -> None:
        applying.wait()
        try:
            apply(engine, event_id)
        except Exception as exc:  # a deadlock or any other failure is what this test looks for
            errors.append(f"{event_id}: {type(exc).__name__}: {exc}")

    run_at_once(apply_at_once, [(e,) for e in event_ids])


def test_every_order_delivered_and_applied_concurrently_converges(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    outcomes: dict[tuple[str, ...], dict[str, Any]] = {}
    errors: list[str] = []
    with serving(rzp_app) as base:
        for order_of_kinds in itertools.permutations(KINDS):
            _, order = checkout(rzp_app, engine, people)
            made, ids = bodies(order)
            deliver_and_apply_at_once(base, engine, made, order_of_kinds, errors)
            outcomes[order_of_kinds] = final_state(engine, order, ids)
    assert errors == []
    assert {k: v for k, v in outcomes.items() if v != EXPECTED} == {}
    assert len(outcomes) == 24


def test_every_order_delivered_at_once_and_applied_by_a_real_worker_converges(
        rzp_app: Any, engine: Engine, people: dict[str, Account], spawn: Callable[..., Process], settle_url: str,
        redis_url: str) -> None:
    """The same, end to end: all 24 orders' events posted at once from threads, the jobs run by a
    Celery worker with four processes (the task locks its event row, applies it, retries a
    transient error); every order ends in the same state."""
    start_worker(spawn, "webhooks", concurrency=4, env={"DATABASE_URL": settle_url})
    orders = []
    for order_of_kinds in itertools.permutations(KINDS):
        _, order = checkout(rzp_app, engine, people)
        made, ids = bodies(order)
        orders.append((order_of_kinds, order, made, ids))
    posts = [(made[kind], i * 0.002) for order_of_kinds, _, made, _ in orders
             for i, kind in enumerate(order_of_kinds)]
    answers: list[Any] = []
    with serving(rzp_app) as base:
        barrier = threading.Barrier(len(posts))

        def deliver(body: bytes, delay: float) -> None:
            barrier.wait()
            time.sleep(delay)
            answers.append(requests.post(f"{base}/api/v1/webhooks/razorpay", data=body,
                                         headers=signed_headers(body), timeout=60))

        run_at_once(deliver, posts)
    assert sorted(a.status_code for a in answers) == [200] * len(posts)
    jobs = [a.json()["job_id"] for a in answers]

    def all_done() -> bool:
        with Session(engine) as session, session.begin():  # stands in for the scheduler's relay
            commands.relay(session, enqueuer(redis_url), stale_seconds=3)
        with engine.connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM jobs WHERE id = ANY(CAST(:j AS uuid[])) "
                                        "AND status NOT IN ('succeeded', 'failed')"), {"j": jobs}).scalar_one()
        return waiting == 0

    wait_until(all_done, timeout=180, interval=0.5, what="the worker to apply every event")
    with engine.connect() as conn:
        failed = conn.execute(text("SELECT count(*) FROM jobs WHERE id = ANY(CAST(:j AS uuid[])) "
                                   "AND status <> 'succeeded'"), {"j": jobs}).scalar_one()
    assert failed == 0
    outcomes = {kinds: final_state(engine, order, ids) for kinds, order, _, ids in orders}
    assert {k: v for k, v in outcomes.items() if v != EXPECTED} == {}


def test_signed_event_replayed_under_a_new_or_no_event_id_is_a_duplicate(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    _, order = checkout(rzp_app, engine, people)
    made, _ = bodies(order)
    body = made["payment.captured"]
    first = post_event(rzp_app, body, event_id=f"evt_{uuid.uuid4().hex[:14]}")
    assert first.status_code == 200 and first.json["status"] == "accepted"
    renamed = post_event(rzp_app, body, event_id=f"evt_{uuid.uuid4().hex[:14]}")
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    from tests.factories.accounts import client_for

    unnamed = client_for(rzp_app).post("/api/v1/webhooks/razorpay", data=body, headers={
        "X-Razorpay-Signature": signature, "Content-Type": "application/json"})
    assert [renamed.json["status"], unnamed.json["status"]] == ["duplicate", "duplicate"]
    assert renamed.status_code == unnamed.status_code == 200
    # The same event re-serialised by the provider (other bytes, same signed content) is the same event.
    reordered = json.dumps(json.loads(body), indent=2, sort_keys=True).encode()
    assert post_event(rzp_app, reordered).json["status"] == "duplicate"
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM webhook_events WHERE payload::text LIKE :p"),
                              {"p": f"%{order['order_id']}%"}).scalar_one()
        jobs = conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'payments.webhook' AND params ->> "
                                 "'webhook_event_id' IN (SELECT id::text FROM webhook_events WHERE payload::text "
                                 "LIKE :p)"), {"p": f"%{order['order_id']}%"}).scalar_one()
    assert (stored, jobs) == (1, 1)
    # Another event of the same payment (another type) is not a duplicate.
    assert post_event(rzp_app, made["payment.authorized"]).json["status"] == "accepted"


# --- events for an order not known yet: parked, applied when it appears, flagged when overdue ------


def hide_order(engine: Engine, payment_id: str) -> dict[str, Any]:
    """Take the order's payment row away (kept as it was): its events now find no order here, as
    when they outrun the request that records it."""
    with engine.begin() as conn:
        kept = conn.execute(text("SELECT to_jsonb(p) FROM payments AS p WHERE id = :p"), {"p": payment_id}).scalar_one()
        conn.execute(text("DELETE FROM payments WHERE id = :p"), {"p": payment_id})
    return dict(kept)


def order_appears(engine: Engine, kept: dict[str, Any]) -> None:
    """The order's payment row is inserted, as `open_order` inserts it."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO payments SELECT * FROM jsonb_populate_record(NULL::payments, "
                          "CAST(:row AS jsonb))"), {"row": json.dumps(kept)})


def sweep(engine: Engine, **options: Any) -> dict[str, int]:
    """What the `settlements.reconcile` job runs after the payouts."""
    return as_worker(engine, lambda session: payment_webhooks.sweep_parked(session, **options))


def parked_on(engine: Engine, ids: dict[str, str]) -> dict[str, str | None]:
    """Each event's kind → where it is parked, for the events of this order's provider ids."""
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT event_type, parked_on FROM webhook_events WHERE processed_at IS NULL "
            "AND (payload::text LIKE '%' || :a || '%' OR payload::text LIKE '%' || :b || '%')"),
            {"a": ids["paid"], "b": ids["failed"]}).all())


def test_every_order_for_an_order_not_yet_known_is_parked_then_applied_when_it_appears(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    """All four events delivered and applied at once (threads) before the order is known here: each
    is parked (payment events on the order, the refund on its payment), none applied, none lost.
    The order appears; two sweeps run at once: every order ends in the same state as above."""
    outcomes: dict[tuple[str, ...], dict[str, Any]] = {}
    errors: list[str] = []
    with serving(rzp_app) as base:
        for order_of_kinds in itertools.permutations(KINDS):
            _, order = checkout(rzp_app, engine, people)
            made, ids = bodies(order)
            kept = hide_order(engine, order["payment_id"])
            deliver_and_apply_at_once(base, engine, made, order_of_kinds, errors)
            assert parked_on(engine, ids) == {
                "payment.authorized": order["order_id"], "payment.captured": order["order_id"],
                "payment.failed": order["order_id"], "refund.processed": ids["paid"]}, order_of_kinds
            order_appears(engine, kept)
            run_at_once(lambda: sweep(engine), [(), ()])
            outcomes[order_of_kinds] = final_state(engine, order, ids)
    assert errors == []
    assert {k: v for k, v in outcomes.items() if v != EXPECTED} == {}
    assert len(outcomes) == 24


def test_every_order_converges_when_the_order_appears_while_its_events_are_applied(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    """The order appears (and a sweep runs) at the same moment as the four events are applied by
    concurrent jobs: whichever comes first, after the next sweep every order is in the same state."""
    outcomes: dict[tuple[str, ...], dict[str, Any]] = {}
    errors: list[str] = []
    with serving(rzp_app) as base:
        for order_of_kinds in itertools.permutations(KINDS):
            _, order = checkout(rzp_app, engine, people)
            made, ids = bodies(order)
            kept = hide_order(engine, order["payment_id"])
            event_ids = []
            for kind in order_of_kinds:
                answer = requests.post(f"{base}/api/v1/webhooks/razorpay", data=made[kind],
                                       headers=signed_headers(made[kind]), timeout=30)
                event_ids.append(answer.json()["event_id"])
            barrier = threading.Barrier(len(event_ids) + 1)

            def job(event_id: str | None, barrier: threading.Barrier, kept: dict[str, Any]) -> None:
                barrier.wait()
                try:
                    if event_id is None:
                        order_appears(engine, kept)
                        sweep(engine)
                    else:
                        apply(engine, event_id)
                except Exception as exc:  # a deadlock or any other failure is what this test looks for
                    errors.append(f"{event_id}: {type(exc).__name__}: {exc}")

            run_at_once(job, [(e, barrier, kept) for e in event_ids] + [(None, barrier, kept)])
            sweep(engine)  # the next scheduled sweep
            outcomes[order_of_kinds] = final_state(engine, order, ids)
    assert errors == []
    assert {k: v for k, v in outcomes.items() if v != EXPECTED} == {}


def test_an_event_parked_past_the_age_limit_is_flagged_never_dropped_and_still_applied(
        rzp_app: Any, engine: Engine, people: dict[str, Account], caplog: pytest.LogCaptureFixture) -> None:
    _, order = checkout(rzp_app, engine, people)
    made, ids = bodies(order)
    kept = hide_order(engine, order["payment_id"])
    old, young = (post_event(rzp_app, made[kind]).json["event_id"] for kind in ("payment.captured", "payment.failed"))
    assert apply(engine, old).startswith("parked") and apply(engine, young).startswith("parked")
    with engine.begin() as conn:  # the captured event arrived two hours ago (the database's clock)
        conn.execute(text("UPDATE webhook_events SET received_at = now() - interval '2 hours' WHERE event_id = :e"),
                     {"e": old})
    before = overdue_count()
    with caplog.at_level("WARNING", logger="ombaro.payments.webhooks"):
        counts = sweep(engine, overdue_after=dt.timedelta(hours=1))
    assert counts["overdue"] == 1 and counts["applied"] == 0
    flagged = row(engine, "SELECT overdue_at IS NOT NULL, parked_on, processed_at FROM webhook_events "
                          "WHERE event_id = :e", e=old)
    assert tuple(flagged) == (True, order["order_id"], None)  # flagged, still parked, not done
    assert row(engine, "SELECT overdue_at FROM webhook_events WHERE event_id = :e", e=young)[0] is None
    assert any(old in r.getMessage() and "overdue" in r.getMessage() for r in caplog.records)
    assert overdue_count() == before + 1
    assert sweep(engine, overdue_after=dt.timedelta(hours=1))["overdue"] == 0  # flagged once
    assert overdue_count() == before + 1
    # The operator's query (docs/reliability.md) lists it.
    with engine.connect() as conn:
        listed = conn.execute(text(
            "SELECT event_id FROM webhook_events WHERE parked_on IS NOT NULL AND overdue_at IS NOT NULL")
        ).scalars().all()
    assert old in listed and young not in listed
    # The order turns up late: the flagged event is applied all the same.
    order_appears(engine, kept)
    assert sweep(engine)["applied"] == 2
    state = final_state(engine, order, ids)
    assert (state["status"], state["booking"], state["events_waiting"]) == ("success", "paid", 0)
    assert row(engine, "SELECT overdue_at IS NOT NULL, parked_on, processed_at IS NOT NULL FROM webhook_events "
                       "WHERE event_id = :e", e=old)[:] == (True, None, True)


def overdue_count() -> float:
    """ombaro_webhook_events_overdue_total{provider="razorpay", event_type="payment.captured"} as
    /metrics would show it (the store in the session's Redis)."""
    import redis

    from ombaro.config import load_settings

    collector = metrics.RedisCollector(redis.Redis.from_url(load_settings().redis_url))
    for family in collector.collect():
        if family.name == "ombaro_webhook_events_overdue":
            return sum(s.value for s in family.samples if s.labels.get("event_type") == "payment.captured"
                       and s.name.endswith("_total"))
    return 0.0


def test_a_refund_event_before_its_payment_is_known_is_parked_whatever_its_kind(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    """refund.failed of a refund we never made, for a payment not known yet: parked on the payment;
    once it is captured, applied (nothing to apply to a refund made elsewhere), not left waiting."""
    _, order = checkout(rzp_app, engine, people)
    made, ids = bodies(order)
    failed = json.loads(made["refund.processed"])
    failed["event"] = "refund.failed"
    failed["payload"]["refund"]["entity"]["status"] = "failed"
    body = json.dumps(failed, separators=(",", ":")).encode()
    assert apply(engine, post_event(rzp_app, body).json["event_id"]).startswith(f"parked: payment {ids['paid']}")
    outcome = apply(engine, post_event(rzp_app, made["payment.captured"]).json["event_id"])
    assert "parked events applied: refund.failed of a refund made elsewhere" in outcome
    state = final_state(engine, order, ids)
    assert (state["status"], state["refunds"], state["events_waiting"]) == ("success", [], 0)


def test_the_reconcile_endpoint_takes_the_parked_age_limit_and_refuses_a_bad_one(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    from tests.factories.accounts import client_for

    finance = client_for(rzp_app, people["finance"])
    bad = finance.post("/api/v1/settlements/reconcile", json={"parked_overdue_after_seconds": 5})
    assert bad.status_code == 422 and "parked_overdue_after_seconds" in json.dumps(bad.json)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'settlements.reconcile'")).scalar_one()
    good = finance.post("/api/v1/settlements/reconcile", json={"parked_overdue_after_seconds": 7200})
    assert good.status_code == 202, good.json
    with engine.connect() as conn:
        params = conn.execute(text("SELECT params FROM jobs WHERE id = :j"), {"j": good.json["id"]}).scalar_one()
        after = conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'settlements.reconcile'")).scalar_one()
    assert params["parked_overdue_after_seconds"] == 7200 and after == before + 1
    customer = client_for(rzp_app, people["customer"])
    assert customer.post("/api/v1/settlements/reconcile", json={}).status_code == 403
