"""Payments through the API with the real Razorpay SDK against the local server: checkout and its
signature, cash, refunds, and the webhook (signature over the raw body, de-duplication, order)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro import payments
from ombaro.commands import RetryLater
from ombaro.payments import webhooks as payment_webhooks
from ombaro.providers.razorpay import RazorpayProvider
from tests.factories.accounts import Account, client_for
from tests.factories.payments import a_booking, checkout, paid_online
from tests.payments.helpers import WEBHOOK_SECRET, as_worker, event, post_event, row
from tests.payments.razorpay_server import KEY_SECRET, FakeRazorpay


def test_order_is_for_the_amount_the_server_computes_and_paid_only_with_a_valid_signature(
        rzp_app: Any, engine: Engine, people: dict[str, Account], razorpay: FakeRazorpay) -> None:
    booking_id, order = checkout(rzp_app, engine, people)
    assert order["amount"] == 292050 and order["amounts"]["total"] == "2920.50"
    assert razorpay.orders[order["order_id"]]["amount"] == 292050
    customer = client_for(rzp_app, people["customer"])
    gateway_payment = f"pay_{secrets.token_hex(7)}"
    good = hmac.new(KEY_SECRET.encode(), f"{order['order_id']}|{gateway_payment}".encode(), hashlib.sha256).hexdigest()
    verify = f"/api/v1/payments/{order['payment_id']}/verify"

    forged = customer.post(verify, json={"razorpay_order_id": order["order_id"], "razorpay_payment_id": gateway_payment,
                                         "razorpay_signature": "0" * 64})
    assert forged.status_code == 422
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "pending"
    # Someone else's callback for this payment, correctly signed, is still not theirs to make.
    other = client_for(rzp_app, people["other_customer"]).post(verify, json={
        "razorpay_order_id": order["order_id"], "razorpay_payment_id": gateway_payment, "razorpay_signature": good})
    assert other.status_code == 404

    paid = customer.post(verify, json={"razorpay_order_id": order["order_id"], "razorpay_payment_id": gateway_payment,
                                       "razorpay_signature": good})
    assert paid.status_code == 200, paid.json
    assert (paid.json["status"], paid.json["total_amount"]) == ("success", "2920.50")
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "paid"
    # Paid bookings take no second order; another customer cannot open one on this booking.
    again = customer.post("/api/v1/payments/orders", json={"booking_id": str(booking_id)})
    assert again.status_code == 409
    foreign = client_for(rzp_app, people["other_customer"]).post("/api/v1/payments/orders",
                                                                  json={"booking_id": str(booking_id)})
    assert foreign.status_code == 404


def test_vendor_records_cash_for_a_spa_visit_once(rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    booking_id = a_booking(engine, people, booking_type="spa_visit", status="completed")
    vendor = client_for(rzp_app, people["vendor"])
    first = vendor.post("/api/v1/payments/cash", json={"booking_id": str(booking_id)})
    assert first.status_code == 201, first.json
    assert (first.json["payment_method"], first.json["total_amount"], first.json["status"]) == (
        "cash", "2920.50", "success")
    assert vendor.post("/api/v1/payments/cash", json={"booking_id": str(booking_id)}).status_code == 409
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "paid"
    # A customer holds payments:create too, but has no vendor to record cash for.
    customer = client_for(rzp_app, people["customer"])
    assert customer.post("/api/v1/payments/cash", json={"booking_id": str(booking_id)}).status_code == 404
    home = a_booking(engine, people, booking_type="home_service", status="completed")
    assert vendor.post("/api/v1/payments/cash", json={"booking_id": str(home)}).status_code == 409


def test_partial_then_full_refund_keeps_payment_and_booking_consistent_and_refunds_once(
        rzp_app: Any, engine: Engine, people: dict[str, Account], razorpay: FakeRazorpay,
        provider: RazorpayProvider) -> None:
    booking_id, payment_id = paid_online(rzp_app, engine, people)
    finance = client_for(rzp_app, people["finance"])
    url = f"/api/v1/payments/{payment_id}/refunds"
    assert client_for(rzp_app, people["care"]).post(url, json={"amount": "1.00", "reason": "late"}).status_code == 403
    assert finance.post(url, json={"amount": "5000.00", "reason": "too much"}).status_code == 409
    assert finance.post(url, json={"amount": "100.00"}).status_code == 422  # a reason is required

    partial = finance.post(url, json={"amount": "920.50", "reason": "therapist arrived late"})
    assert partial.status_code == 202, partial.json
    refund_id = uuid.UUID(partial.json["refund"]["id"])
    assert partial.json["job"]["kind"] == "payments.refund"
    payment = row(engine, "SELECT status, refund_amount FROM payments WHERE id = :p", p=payment_id)
    assert tuple(payment) == ("partially_refunded", Decimal("920.50"))
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "partial"

    # The job: the provider refunds, then answers too late; the retry asks before sending again.
    razorpay.mode = "timeout_after_success"
    with pytest.raises(RetryLater):
        as_worker(engine, lambda s: payments.send_refund(s, provider, refund_id, look_first=False))
    razorpay.mode = "normal"
    assert as_worker(engine, lambda s: payments.send_refund(s, provider, refund_id, look_first=True)) == "processed"
    assert len([r for r in razorpay.refunds if r["receipt"] == str(refund_id)]) == 1

    rest = finance.post(url, json={"reason": "booking cancelled"})  # no amount: everything left
    assert rest.status_code == 202 and rest.json["refund"]["amount"] == "2000.00"
    payment = row(engine, "SELECT status, refund_amount FROM payments WHERE id = :p", p=payment_id)
    assert tuple(payment) == ("refunded", Decimal("2920.50"))
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "refunded"
    assert finance.post(url, json={"amount": "0.01", "reason": "again"}).status_code == 409

    # The provider refuses the second refund: the amount comes back to the payment and the booking.
    razorpay.mode = "reject"
    second = uuid.UUID(rest.json["refund"]["id"])
    assert as_worker(engine, lambda s: payments.send_refund(s, provider, second, look_first=False)) == "failed"
    payment = row(engine, "SELECT status, refund_amount FROM payments WHERE id = :p", p=payment_id)
    assert tuple(payment) == ("partially_refunded", Decimal("920.50"))
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "partial"
    detail = finance.get(f"/api/v1/payments/{payment_id}").json
    assert [r["status"] for r in detail["refunds"]] == ["processed", "failed"]


# --- the webhook -----------------------------------------------------------------------------------


def events_for(engine: Engine, event_id: str) -> int:
    return row(engine, "SELECT count(*) FROM webhook_events WHERE event_id = :e", e=event_id)[0]


def test_webhook_signature_is_checked_over_the_raw_body(rzp_app: Any, engine: Engine,
                                                        people: dict[str, Account]) -> None:
    _, order = checkout(rzp_app, engine, people)
    body = event("payment.captured", order["order_id"], "pay_sigtest0000001", order["amount"])
    good_signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    tampered = bytearray(body)
    tampered[body.index(b'"amount":') + 9] ^= 0x01  # one byte of the amount
    reserialised = json.dumps(json.loads(body), indent=1).encode()  # same JSON, other bytes
    attempts = {
        "one byte tampered": post_event(rzp_app, bytes(tampered), signature=good_signature, event_id="evt_bad1"),
        "wrong secret": post_event(rzp_app, body, secret="not-the-secret", event_id="evt_bad2"),
        "re-serialised body": post_event(rzp_app, reserialised, signature=good_signature, event_id="evt_bad3"),
        "no signature": client_for(rzp_app).post("/api/v1/webhooks/razorpay", data=body,
                                                 headers={"X-Razorpay-Event-Id": "evt_bad4"}),
    }
    assert {name: answer.status_code for name, answer in attempts.items()} == dict.fromkeys(attempts, 400)
    assert sum(events_for(engine, f"evt_bad{n}") for n in range(1, 5)) == 0
    assert row(engine, "SELECT status FROM payments WHERE id = :p", p=order["payment_id"])[0] == "pending"

    accepted = post_event(rzp_app, body, event_id="evt_" + order["order_id"])
    assert accepted.status_code == 200 and accepted.json["status"] == "accepted"
    replayed = post_event(rzp_app, body, event_id="evt_" + order["order_id"])
    assert replayed.status_code == 200 and replayed.json["status"] == "duplicate"
    assert events_for(engine, "evt_" + order["order_id"]) == 1
    assert row(engine, "SELECT count(*) FROM jobs WHERE kind = 'payments.webhook' AND idempotency_key = :k",
               k="razorpay:evt_" + order["order_id"])[0] == 1


def apply_event(engine: Engine, app: Any, body: bytes) -> str:
    answer = post_event(app, body)
    assert answer.status_code == 200 and answer.json["status"] == "accepted"
    from ombaro.models.settlements import WebhookEvent

    def work(session: Session) -> str:
        recorded = session.query(WebhookEvent).filter_by(event_id=answer.json["event_id"]).one()
        return payment_webhooks.handle_event(session, recorded)

    return as_worker(engine, work)


def test_events_out_of_order_never_move_a_payment_backward(rzp_app: Any, engine: Engine,
                                                           people: dict[str, Account]) -> None:
    booking_id, order = checkout(rzp_app, engine, people)
    order_id, amount = order["order_id"], order["amount"]
    assert apply_event(engine, rzp_app, event("payment.captured", order_id, "pay_ooo00000000001", amount)) \
        == "payment success"
    assert apply_event(engine, rzp_app, event("payment.authorized", order_id, "pay_ooo00000000001", amount)) \
        == "payment already success"
    assert apply_event(engine, rzp_app, event("payment.failed", order_id, "pay_ooo00000000001", amount)) \
        == "payment already success"
    payment = row(engine, "SELECT status, payment_method, gateway_transaction_id FROM payments WHERE id = :p",
                  p=order["payment_id"])
    assert tuple(payment) == ("success", "debit_card", "pay_ooo00000000001")
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "paid"


def test_a_captured_event_for_another_amount_does_not_mark_the_payment_paid(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    _, order = checkout(rzp_app, engine, people)
    outcome = apply_event(engine, rzp_app, event("payment.captured", order["order_id"], "pay_amt00000000001", 100))
    assert outcome.startswith("amount mismatch")
    assert row(engine, "SELECT status FROM payments WHERE id = :p", p=order["payment_id"])[0] == "pending"


def test_refund_made_on_the_dashboard_arrives_as_an_event_and_is_recorded(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    booking_id, payment_id = paid_online(rzp_app, engine, people)
    gateway_payment = row(engine, "SELECT gateway_transaction_id FROM payments WHERE id = :p", p=payment_id)[0]
    body = json.dumps({"entity": "event", "event": "refund.processed", "contains": ["refund"], "payload": {
        "refund": {"entity": {"id": f"rfnd_{secrets.token_hex(7)}", "entity": "refund", "amount": 292050,
                              "payment_id": gateway_payment, "status": "processed", "notes": {}}}}}).encode()
    assert apply_event(engine, rzp_app, body) == "refund processed"
    assert tuple(row(engine, "SELECT status, refund_amount FROM payments WHERE id = :p", p=payment_id)) == (
        "refunded", Decimal("2920.50"))
    assert row(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking_id)[0] == "refunded"
    assert row(engine, "SELECT status FROM payment_refunds WHERE payment_id = :p", p=payment_id)[0] == "processed"


def test_webhook_without_a_configured_secret_is_refused(app: Any) -> None:
    answer = client_for(app).post("/api/v1/webhooks/razorpay", data=b"{}", headers={"X-Razorpay-Signature": "x"})
    assert answer.status_code == 503


