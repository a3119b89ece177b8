"""Vendors and bookings for the notification tests (reminders, confirmations), made with plain SQL."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

IST = ZoneInfo("Asia/Kolkata")


def a_vendor(engine: Engine) -> uuid.UUID:
    vendor = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :e, '!')"),
                     {"id": vendor, "e": f"v.{vendor.hex[:8]}@example.test"})
        conn.execute(text("INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, "
                          "contact_email) VALUES (:id, 'Calm Spa', '{}', 'Owner', '+919811111111', 's@example.test')"),
                     {"id": vendor})
    return vendor


def a_booking(engine: Engine, customer: uuid.UUID, vendor: uuid.UUID, *, starts: dt.datetime,
              status: str = "pending", created: dt.datetime | None = None) -> uuid.UUID:
    local = starts.astimezone(IST)
    with engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time, status, total_amount, created_at) VALUES (:n, :c, :v, 'spa_visit', '{}', "
            ":d, :t, :s, 1770, :at) RETURNING id"),
            {"n": f"OBO-{uuid.uuid4().hex[:10]}", "c": customer, "v": vendor, "d": local.date(),
             "t": local.time().replace(second=0, microsecond=0), "s": status,
             "at": created or dt.datetime.now(dt.UTC)}).scalar_one()


def tomorrow_noon() -> dt.datetime:
    return (dt.datetime.now(IST) + dt.timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
