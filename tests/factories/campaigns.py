"""Customers, campaigns and the employee who made them, for the campaign and notification tests:
rows inserted set-based with plain SQL."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from ombaro.config import Settings
from tests.factories.accounts import unique_mobile


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    mobile: str
    name: str


def zone_at(hour: int) -> str:
    """A zone where the local time is now `hour`:xx (Etc/GMT-N is N hours ahead of UTC)."""
    ahead = (hour - dt.datetime.now(dt.UTC).hour) % 24
    ahead = ahead - 24 if ahead > 14 else ahead
    return f"Etc/GMT{-ahead:+d}" if ahead else "UTC"


def add_customers(engine: Engine, n: int, *, city: str, tier: str = "gold", prefs: dict[str, Any] | None = None,
                  born: dt.date = dt.date(1990, 6, 15), status: str = "active", timezone: str | None = "day",
                  mobile_suffix: str | None = None, name: str = "Asha Rao") -> list[Person]:
    """Customers with their auth user and profile, inserted set-based. By default they live where
    it is early afternoon now, out of the quiet hours (timezone=None: the platform's zone)."""
    if timezone == "day":
        timezone = zone_at(13)
    people = []
    rows_u, rows_p, rows_c = [], [], []
    for _ in range(n):
        uid = uuid.uuid4()
        tag = uid.hex[:10]
        mobile = unique_mobile()
        if mobile_suffix:
            mobile = mobile[: -len(mobile_suffix)] + mobile_suffix
        email = f"c.{tag}@example.test"
        people.append(Person(uid, email, mobile, name))
        rows_u.append({"id": uid, "email": email})
        rows_p.append({"id": uid, "name": name, "mobile": mobile, "born": born, "status": status,
                       "address": {"city": city}, "prefs": {"timezone": timezone} if timezone else None})
        rows_c.append({"id": uid, "tier": tier, "prefs": prefs if prefs is not None else {"email": True, "sms": True}})
    import json

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :email, '!')"), rows_u)
        conn.execute(text(
            "INSERT INTO user_profiles (id, name, mobile, role, status, date_of_birth, address, preferences) "
            "VALUES (:id, :name, :mobile, 'customer', :status, :born, CAST(:address AS jsonb), CAST(:prefs AS jsonb))"),
            [{**r, "address": json.dumps(r["address"]), "prefs": json.dumps(r["prefs"]) if r["prefs"] else None}
             for r in rows_p])
        conn.execute(text("INSERT INTO customers (id, membership_tier, communication_preferences) "
                          "VALUES (:id, :tier, CAST(:prefs AS jsonb))"),
                     [{**r, "prefs": json.dumps(r["prefs"])} for r in rows_c])
    return people


def a_city() -> str:
    return f"Testville-{secrets.token_hex(4)}"


_STAFF: dict[str, uuid.UUID] = {}


def staff_employee(engine: Engine) -> uuid.UUID:
    """An employee to be campaigns.created_by / approved_by (one per database: the chaos tests'
    runtimes use databases of their own)."""
    key = engine.url.render_as_string(hide_password=False)
    if key not in _STAFF:
        uid = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :e, '!')"),
                         {"id": uid, "e": f"mkt.{uid.hex[:8]}@ombaro.test"})
            conn.execute(text(
                "INSERT INTO employees (id, employee_code, name, email, mobile, department, designation, joining_date) "
                "VALUES (:id, :code, 'Meena', :e, '+919800000099', 'marketing_department', 'Manager', '2025-04-01')"),
                {"id": uid, "code": f"E-{uid.hex[:8]}", "e": f"mkt.{uid.hex[:8]}@ombaro.test"})
        _STAFF[key] = uid
    return _STAFF[key]


EMAIL_CONTENT = {"subject": "$first_name, your $tier treat in $city",
                 "body": "Hi $first_name,\n\nBook a massage in $city this week and save 20%."}
SMS_CONTENT = {"body": "Hi $first_name, 20% off at OMBARO partners in $city this week."}


def add_campaign(engine: Engine, *, city: str | None = None, ctype: str = "multi_channel",
                 content: dict[str, Any] | None = None, status: str = "active",
                 target: dict[str, Any] | None = None, end_date: dt.datetime | None = None,
                 budget: Decimal = Decimal("100000.00")) -> uuid.UUID:
    import json

    creator = staff_employee(engine)
    content = content if content is not None else {"email": EMAIL_CONTENT, "sms": SMS_CONTENT}
    target = target if target is not None else {"city": [city]}
    with engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO campaigns (name, type, status, target_audience, content, start_date, end_date, budget, "
            "created_by, approved_by) VALUES ('Test', :type, :status, CAST(:target AS jsonb), CAST(:content AS jsonb), "
            "now(), :end, :budget, :creator, :creator) RETURNING id"),
            {"type": ctype, "status": status, "target": json.dumps(target), "content": json.dumps(content),
             "end": end_date, "budget": budget, "creator": creator}).scalar_one()


def clock(engine: Engine) -> tuple[dt.date, dt.datetime]:
    """Today (in the platform's zone) and now, from the database's clock: the one the bookings'
    timestamps are compared with."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    return now.astimezone(ZoneInfo(Settings.timezone)).date(), now


def booked(engine: Engine, customer: uuid.UUID, days_ago: float, status: str = "completed") -> None:
    """A booking made `days_ago` days before the database's now."""
    at = clock(engine)[1] - dt.timedelta(days=days_ago)
    with engine.begin() as conn:
        vendor = conn.execute(text("SELECT id FROM vendors LIMIT 1")).scalar()
        if vendor is None:
            vendor = uuid.uuid4()
            conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :e, '!')"),
                         {"id": vendor, "e": f"v.{vendor.hex[:8]}@example.test"})
            conn.execute(text(
                "INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, "
                "contact_email) VALUES (:id, 'Spa', '{}', 'Owner', '+919811111111', 'spa@example.test')"),
                {"id": vendor})
        conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time, status, created_at) VALUES (:n, :c, :v, 'spa_visit', '{}', :d, '10:00', "
            ":s, :at)"),
            {"n": f"OBO-{uuid.uuid4().hex[:12]}", "c": customer, "v": vendor, "s": status,
             "d": at.date(), "at": at})
