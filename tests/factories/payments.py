"""Bookings paid through the API (order, checkout, verified payment) and settled, approved vendor
weeks with a payout account, for the payment and payout tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.settlements import payouts, runs
from tests.factories import settlements as f
from tests.factories.accounts import Account, client_for
from tests.payments.razorpay_server import KEY_SECRET
from tests.settlements.helpers import as_worker


def a_booking(engine: Engine, people: dict[str, Account], *, booking_type: str = "home_service",
              status: str = "confirmed") -> uuid.UUID:
    """A booking of 2 items (one with an add-on), a 10% promotion and 18% GST on the rest."""
    with engine.begin() as conn:
        service = conn.execute(text(
            "INSERT INTO services (code, name, category, base_price_60min) VALUES (:c, 'Swedish', 'relaxation', 1500) "
            "RETURNING id"), {"c": f"S{secrets.token_hex(3).upper()}"}).scalar_one()
        booking = conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time, status, subtotal_amount, discount_amount, tax_amount, total_amount) VALUES "
            "(:n, :c, :v, :t, '{\"city\": \"Pune\"}', '2026-11-27', '11:00', :s, 2750.00, 275.00, 445.50, 2920.50) "
            "RETURNING id"), {"n": f"OBO-P-{secrets.token_hex(5)}", "c": people["customer"].id,
                              "v": people["vendor"].id, "t": booking_type, "s": status}).scalar_one()
        for price, subtotal, addons in ((Decimal("1500.00"), Decimal("1500.00"), "[]"),
                                        (Decimal("1000.00"), Decimal("1250.00"), '[{"code": "HOT", "price": 250}]')):
            conn.execute(text("INSERT INTO booking_items (booking_id, service_id, duration, price, addon_services, "
                              "subtotal) VALUES (:b, :s, 60, :p, CAST(:a AS jsonb), :st)"),
                         {"b": booking, "s": service, "p": price, "a": addons, "st": subtotal})
    return booking


def checkout(app: Any, engine: Engine, people: dict[str, Account], **booking: Any) -> tuple[uuid.UUID, dict]:
    booking_id = a_booking(engine, people, **booking)
    answer = client_for(app, people["customer"]).post("/api/v1/payments/orders", json={"booking_id": str(booking_id)})
    assert answer.status_code == 201, answer.json
    return booking_id, answer.json


def paid_online(app: Any, engine: Engine, people: dict[str, Account]) -> tuple[uuid.UUID, str]:
    booking_id, order = checkout(app, engine, people)
    gateway_payment = f"pay_{secrets.token_hex(7)}"
    signature = hmac.new(KEY_SECRET.encode(), f"{order['order_id']}|{gateway_payment}".encode(),
                         hashlib.sha256).hexdigest()
    answer = client_for(app, people["customer"]).post(f"/api/v1/payments/{order['payment_id']}/verify", json={
        "razorpay_order_id": order["order_id"], "razorpay_payment_id": gateway_payment,
        "razorpay_signature": signature})
    assert answer.status_code == 200
    return booking_id, order["payment_id"]


def settled_week(engine: Engine, amount: str = "1000.00", *, maker: uuid.UUID | None = None) -> uuid.UUID:
    """A settled vendor week (pending), run by `maker`, whose vendor has a payout account."""
    with engine.begin() as conn:
        vendor, customer = f.vendor(conn, commission_rate=Decimal("10.00")), f.user(conn)
        f.payment(conn, f.booking(conn, vendor, customer, total=Decimal(amount), day=dt.date(2025, 3, 4)),
                  amount=Decimal(amount), at=f.ist(2025, 3, 4, 12))
    as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=runs.Period(dt.date(2025, 3, 3),
                                                                                      dt.date(2025, 3, 9)),
                                                  vendor_ids=[vendor], requested_by=maker or uuid.uuid4(),
                                                  zone="Asia/Kolkata"))
    as_worker(engine, lambda s: payouts.set_payout_account(s, vendor_id=vendor, account_id="acc_LocalTest0001",
                                                           created_by=None))
    with engine.connect() as conn:
        return conn.execute(text("SELECT id FROM payment_settlements WHERE vendor_id = :v"),
                            {"v": vendor}).scalar_one()


def approved_settlement(engine: Engine, amount: str = "1000.00") -> uuid.UUID:
    """A settled vendor week, run by one person and approved by another, with a payout account."""
    maker, checker = uuid.uuid4(), uuid.uuid4()
    settlement = settled_week(engine, amount, maker=maker)
    with pytest.raises(payouts.MakerCheckerViolation):
        as_worker(engine, lambda s: payouts.approve(s, settlement, approver=maker))
    as_worker(engine, lambda s: payouts.approve(s, settlement, approver=checker))
    return settlement
