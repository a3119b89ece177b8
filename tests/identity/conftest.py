"""Accounts of every role and a small two-tenant world for the access tests."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from ombaro.access.roles import ROLES
from tests.factories.accounts import Account, make_account
from tests.factories.identity import World


@pytest.fixture(scope="session")
def session_role_accounts(engine: Engine) -> dict[str, Account]:
    made = {role: make_account(engine, role) for role in ROLES if role != "therapist"}
    made["therapist"] = make_account(engine, "therapist", vendor_id=made["vendor"].id)
    return made


@pytest.fixture
def role_accounts(session_role_accounts: dict[str, Account]) -> dict[str, Account]:
    """One account per role (the therapist works for the vendor); `Account.token` mints a fresh
    access token as the last one ages (a whole run outlives 15 minutes)."""
    return session_role_accounts


@pytest.fixture(scope="session")
def world(engine: Engine) -> World:
    vendor_a, vendor_b = make_account(engine, "vendor"), make_account(engine, "vendor")
    therapist_a = make_account(engine, "therapist", vendor_id=vendor_a.id)
    therapist_b = make_account(engine, "therapist", vendor_id=vendor_b.id)
    customer_1, customer_2 = make_account(engine, "customer"), make_account(engine, "customer")
    bookings, settlements = [], []
    with engine.begin() as conn:
        service = conn.execute(text(
            "INSERT INTO services (code, name, category, base_price_60min) VALUES (:code, 'Swedish', 'relaxation', "
            "1500) RETURNING id"), {"code": f"S{secrets.token_hex(2).upper()}"}).scalar_one()
        for customer, vendor, therapist in ((customer_1, vendor_a, therapist_a), (customer_2, vendor_b, therapist_b)):
            booking = conn.execute(text(
                "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
                "booking_date, booking_time, status, payment_status, total_amount) VALUES (:n, :c, :v, "
                "'home_service', '{\"city\": \"Pune\"}', :d, '11:00', 'assigned', 'paid', 1770) RETURNING id"),
                {"n": f"OBO-20261126-{secrets.randbelow(10**6):06d}", "c": customer.id, "v": vendor.id,
                 "d": dt.date(2026, 11, 27)}).scalar_one()
            conn.execute(text(
                "INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, service_id, "
                "assignment_date, assignment_time, location_address, estimated_duration) VALUES (:b, :t, :v, :c, "
                ":s, '2026-11-27', '11:00', 'MG Road, Pune', 60)"),
                {"b": booking, "t": therapist.therapist_id, "v": vendor.id, "c": customer.id, "s": service})
            settlement = conn.execute(text(
                "INSERT INTO payment_settlements (vendor_id, settlement_period_start, settlement_period_end, "
                "total_bookings, gross_amount, commission_amount, net_settlement_amount) VALUES (:v, '2026-11-16', "
                "'2026-11-22', 1, :g, :c, :n) RETURNING id"),
                {"v": vendor.id, "g": Decimal("1770.00"), "c": Decimal("265.50"), "n": Decimal("1504.50")}).scalar_one()
            bookings.append(booking)
            settlements.append(settlement)
    return World(vendor_a, vendor_b, therapist_a, therapist_b, customer_1, customer_2, bookings[0], bookings[1],
                 settlements[0], settlements[1])
