"""Issue 13, "deadlock -> 500": every money endpoint under N concurrent identical and conflicting
requests through a real threaded HTTP server (and, for payouts, the payout job running at the same
time) answers only 2xx or 4xx, never a 5xx, and leaves the money right: one payout and one
transfer, one approval, one refund per Idempotency-Key, refunds never above the payment, one cash
payment per booking, every adjustment applied at most once."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import Engine, text

from ombaro.commands import RetryLater
from ombaro.providers.razorpay import RazorpayProvider
from ombaro.settlements import runs
from tests.factories.accounts import Account, make_account
from tests.factories.payments import a_booking, approved_settlement, checkout, paid_online, settled_week
from tests.payments.helpers import at_once, serving
from tests.payments.payouts import send
from tests.payments.razorpay_server import KEY_SECRET, FakeRazorpay
from tests.settlements.helpers import as_worker

N = 20


def post(base: str, account: Account, path: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> Any:
    return lambda: requests.post(f"{base}{path}", json=body or {}, timeout=120,
                                 headers={**account.headers, **(headers or {})})


def statuses(answers: list[Any]) -> Counter[int]:
    assert not [a for a in answers if isinstance(a, Exception)], answers
    return Counter(a.status_code for a in answers)


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_concurrent_payout_requests_while_the_job_runs_make_one_payout_and_one_transfer(
        rzp_app: Any, engine: Engine, razorpay: FakeRazorpay, provider: RazorpayProvider) -> None:
    finance = make_account(engine, "finance_department")
    settlement = approved_settlement(engine, amount="1071953.64")
    razorpay.honour_idempotency = False
    with serving(rzp_app) as base:
        first = post(base, finance, f"/api/v1/settlements/{settlement}/payout")()
        assert first.status_code == 202, first.text
        payout = uuid.UUID(first.json()["payout"]["id"])
        requests_ = [post(base, finance, f"/api/v1/settlements/{settlement}/payout") for _ in range(N)]
        jobs = [lambda: send(engine, provider, payout) for _ in range(4)]  # the job, delivered 4 times
        answers = at_once(requests_ + jobs)
    http, job_runs = answers[:N], answers[N:]
    # 409 only once the payout is done (the settlement is completed: nothing more to pay).
    assert set(statuses(http)) <= {202, 409}
    accepted = [a for a in http if a.status_code == 202]
    assert all("completed" in a.json()["detail"] for a in http if a.status_code == 409)
    assert {a.json()["payout"]["id"] for a in accepted} <= {str(payout)}
    assert {a.json()["job"]["id"] for a in accepted} <= {first.json()["job"]["id"]}  # one job answers them all
    assert [r for r in job_runs if not (r in ("processed", "held") or isinstance(r, RetryLater))] == []
    if scalar(engine, "SELECT status FROM payouts WHERE id = :p", p=payout) != "processed":
        send(engine, provider, payout)  # a run that found the send in flight retries: it looks, never sends
    key = scalar(engine, "SELECT idempotency_key FROM payouts WHERE id = :p", p=payout)
    [made] = razorpay.transfers_with_key(key)
    assert scalar(engine, "SELECT count(*) FROM payouts WHERE settlement_id = :s", s=settlement) == 1
    assert scalar(engine, "SELECT provider_transfer_id FROM payouts WHERE id = :p", p=payout) == made["id"]
    assert scalar(engine, "SELECT status FROM payment_settlements WHERE id = :s", s=settlement) == "completed"


def test_concurrent_approvals_and_payouts_of_a_pending_settlement_approve_once_and_pay_at_most_once(
        rzp_app: Any, engine: Engine, razorpay: FakeRazorpay) -> None:
    checker, other = make_account(engine, "finance_department"), make_account(engine, "finance_department")
    settlement = settled_week(engine)
    with serving(rzp_app) as base:
        approvals = [post(base, (checker, other)[i % 2], f"/api/v1/settlements/{settlement}/approve")
                     for i in range(N // 2)]
        payouts_ = [post(base, checker, f"/api/v1/settlements/{settlement}/payout") for _ in range(N // 2)]
        answers = at_once(approvals + payouts_)
    approved, paid = statuses(answers[:N // 2]), statuses(answers[N // 2:])
    assert approved == {200: 1, 409: N // 2 - 1}
    assert set(paid) <= {202, 409}
    assert scalar(engine, "SELECT count(*) FROM payouts WHERE settlement_id = :s", s=settlement) <= 1
    assert scalar(engine, "SELECT count(*) FROM settlement_approvals WHERE settlement_id = :s "
                          "AND approved_by IS NOT NULL", s=settlement) == 1


def test_concurrent_refunds_never_exceed_the_payment_and_one_key_makes_one_refund(
        rzp_app: Any, engine: Engine, people: dict[str, Account]) -> None:
    finance = people["finance"]
    _, keyed = paid_online(rzp_app, engine, people)
    _, whole = paid_online(rzp_app, engine, people)
    _, slices = paid_online(rzp_app, engine, people)
    with serving(rzp_app) as base:
        same_key = at_once([post(base, finance, f"/api/v1/payments/{keyed}/refunds",
                                 {"amount": "200.00", "reason": "late"}, {"Idempotency-Key": '"refund-late-1"'})
                            for _ in range(N)])
        full = at_once([post(base, finance, f"/api/v1/payments/{whole}/refunds", {"reason": "cancelled"})
                        for _ in range(N)])
        parts = at_once([post(base, finance, f"/api/v1/payments/{slices}/refunds",
                              {"amount": "500.00", "reason": "partly"}) for _ in range(N)])
    assert statuses(same_key) == {202: N}
    assert len({a.json()["refund"]["id"] for a in same_key}) == 1
    assert statuses(full) == {202: 1, 409: N - 1}
    assert statuses(parts) == {202: 5, 409: N - 5}  # 5 x 500.00 fit in 2,920.50; a sixth would not
    refunded = {p: (scalar(engine, "SELECT count(*) FROM payment_refunds WHERE payment_id = :p", p=p),
                    scalar(engine, "SELECT refund_amount FROM payments WHERE id = :p", p=p))
                for p in (keyed, whole, slices)}
    assert refunded == {keyed: (1, Decimal("200.00")), whole: (1, Decimal("2920.50")),
                        slices: (5, Decimal("2500.00"))}


def test_concurrent_checkout_callbacks_mark_the_payment_paid_once(rzp_app: Any, engine: Engine,
                                                                  people: dict[str, Account]) -> None:
    booking, order = checkout(rzp_app, engine, people)
    gateway_payment = f"pay_{uuid.uuid4().hex[:14]}"
    signature = hmac.new(KEY_SECRET.encode(), f"{order['order_id']}|{gateway_payment}".encode(),
                         hashlib.sha256).hexdigest()
    body = {"razorpay_order_id": order["order_id"], "razorpay_payment_id": gateway_payment,
            "razorpay_signature": signature}
    with serving(rzp_app) as base:
        answers = at_once([post(base, people["customer"], f"/api/v1/payments/{order['payment_id']}/verify", body)
                           for _ in range(N)])
    assert statuses(answers) == {200: N}
    assert {a.json()["status"] for a in answers} == {"success"}
    assert scalar(engine, "SELECT count(*) FROM payments WHERE booking_id = :b", b=booking) == 1
    assert scalar(engine, "SELECT gateway_transaction_id FROM payments WHERE id = :p",
                  p=order["payment_id"]) == gateway_payment
    assert scalar(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking) == "paid"


def test_concurrent_cash_for_one_booking_is_recorded_once(rzp_app: Any, engine: Engine,
                                                          people: dict[str, Account]) -> None:
    booking = a_booking(engine, people, booking_type="spa_visit", status="completed")
    with serving(rzp_app) as base:
        answers = at_once([post(base, people["vendor"], "/api/v1/payments/cash", {"booking_id": str(booking)})
                           for _ in range(N)])
    assert statuses(answers) == {201: 1, 409: N - 1}
    assert scalar(engine, "SELECT count(*) FROM payments WHERE booking_id = :b", b=booking) == 1
    assert scalar(engine, "SELECT payment_status FROM bookings WHERE id = :b", b=booking) == "paid"


def test_concurrent_adjustments_during_settlement_runs_are_each_applied_at_most_once(
        rzp_app: Any, engine: Engine) -> None:
    accounts = make_account(engine, "accounts_department")
    settlement = settled_week(engine)  # the vendor's first week; the next run settles its adjustments
    vendor = scalar(engine, "SELECT vendor_id FROM payment_settlements WHERE id = :s", s=settlement)
    week = runs.Period(dt.date(2025, 3, 10), dt.date(2025, 3, 16))

    def run_week() -> Any:
        return as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=week, vendor_ids=[vendor],
                                                             requested_by=None, zone="Asia/Kolkata"))

    with serving(rzp_app) as base:
        answers = at_once([post(base, accounts, "/api/v1/settlements/adjustments",
                                {"vendor_id": str(vendor), "amount": "10.01", "reason": "welcome bonus"})
                           for _ in range(N)] + [run_week, run_week])
    assert statuses(answers[:N]) == {201: N}
    assert [r for r in answers[N:] if isinstance(r, Exception)] == []
    with engine.connect() as conn:
        applied, pending = conn.execute(text(
            "SELECT coalesce(sum(amount) FILTER (WHERE settlement_id IS NOT NULL), 0), "
            "coalesce(sum(amount) FILTER (WHERE settlement_id IS NULL), 0) FROM settlement_adjustments "
            "WHERE vendor_id = :v AND kind = 'manual'"), {"v": vendor}).one()
        in_settlements = conn.execute(text(
            "SELECT coalesce(sum(adjustment_amount), 0), count(*) FROM payment_settlements WHERE vendor_id = :v "
            "AND settlement_period_start = :a"), {"v": vendor, "a": week.start}).one()
    assert applied + pending == Decimal("10.01") * N
    assert in_settlements[1] <= 1 and in_settlements[0] == applied


def test_concurrent_adjustments_with_one_idempotency_key_make_one_adjustment(rzp_app: Any, engine: Engine) -> None:
    accounts = make_account(engine, "accounts_department")
    settlement = settled_week(engine)
    vendor = scalar(engine, "SELECT vendor_id FROM payment_settlements WHERE id = :s", s=settlement)
    body = {"vendor_id": str(vendor), "amount": "-250.00", "reason": "damaged towels"}
    key = {"Idempotency-Key": f'"towels-{uuid.uuid4().hex[:8]}"'}
    with serving(rzp_app) as base:
        answers = at_once([post(base, accounts, "/api/v1/settlements/adjustments", body, key) for _ in range(N)])
        other_body = post(base, accounts, "/api/v1/settlements/adjustments", {**body, "amount": "-25.00"}, key)()
    assert statuses(answers) == {201: N}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == N - 1
    assert other_body.status_code == 422
    assert scalar(engine, "SELECT count(*) FROM settlement_adjustments WHERE vendor_id = :v", v=vendor) == 1
