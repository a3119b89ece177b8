"""Rows for the bookings, dispatch and locations tests, written with plain SQL as the owner. Every
call makes fresh ids and codes, so tests share the session database without seeing each other."""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.db import WORKER_ROLE, act_as

ZONE = ZoneInfo("Asia/Kolkata")
PUNE = (18.5204, 73.8567)
ALL_WEEK = tuple(range(7))


def today() -> dt.date:
    return dt.datetime.now(ZONE).date()


def a_day_ahead(days: int = 7) -> dt.date:
    return today() + dt.timedelta(days=days)


def code() -> str:
    return "T" + secrets.token_hex(3).upper()


def user(engine: Engine) -> uuid.UUID:
    with engine.begin() as conn:
        return conn.execute(text("INSERT INTO auth.users (email, encrypted_password) VALUES (:e, '!') RETURNING id"),
                            {"e": f"{uuid.uuid4().hex}@dispatch.test"}).scalar_one()


def vendor(engine: Engine, *, point: tuple[float, float] = PUNE, city: str = "Pune",
           hours: dict[str, Any] | None = None, vendor_id: uuid.UUID | None = None) -> uuid.UUID:
    """A verified, active vendor (or make an account's vendor row bookable at `point`)."""
    address = {"street": "1 FC Road", "city": city, "latitude": point[0], "longitude": point[1], "pincode": "411004"}
    with engine.begin() as conn:
        if vendor_id is not None:
            conn.execute(text("UPDATE vendors SET business_address = :a, operating_hours = :h, status = 'active', "
                              "verification_status = 'verified', services_offered = NULL WHERE id = :v"),
                         {"a": json.dumps(address), "h": json.dumps(hours) if hours else None, "v": vendor_id})
            return vendor_id
    owner = user(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO vendors (id, business_name, business_type, business_address, contact_person, contact_mobile, "
            "contact_email, operating_hours, verification_status, status) VALUES (:id, 'Calm Spa', 'spa', :a, 'Owner', "
            "'+919800000000', 'spa@dispatch.test', :h, 'verified', 'active')"),
            {"id": owner, "a": json.dumps(address), "h": json.dumps(hours) if hours else None})
    return owner


def service(engine: Engine, *, price: str = "1500.00", durations: Sequence[int] = (60, 90, 120),
            service_code: str | None = None) -> tuple[uuid.UUID, str]:
    found_code = service_code or code()
    with engine.begin() as conn:
        service_id = conn.execute(text(
            "INSERT INTO services (code, name, category, base_price_60min, duration_options) "
            "VALUES (:c, :n, 'relaxation', :p, :d) RETURNING id"),
            {"c": found_code, "n": f"Massage {found_code}", "p": Decimal(price), "d": list(durations)}).scalar_one()
    return service_id, found_code


def addon(engine: Engine, *, price: str = "300.00", minutes: int = 15) -> uuid.UUID:
    with engine.begin() as conn:
        return conn.execute(text("INSERT INTO addon_services (code, name, duration, price) VALUES (:c, 'Hot stones', "
                                 ":m, :p) RETURNING id"), {"c": code(), "m": minutes, "p": Decimal(price)}).scalar_one()


def clock(value: str) -> dt.time:
    return dt.time.fromisoformat(value)


def therapist(engine: Engine, vendor_id: uuid.UUID, *, codes: Sequence[str], gender: str = "female",
              status: str = "active", rating: str = "4.50", shift: tuple[str, str] | None = ("09:00", "21:00"),
              rest: tuple[str, str] | None = ("14:00", "15:00"), days: Sequence[int] = ALL_WEEK,
              name: str | None = None, with_login: bool = False, therapist_id: uuid.UUID | None = None
              ) -> uuid.UUID:
    """A therapist of the vendor with a shift on `days` (0 = Sunday); or reshape an existing one."""
    login = user(engine) if with_login else None
    with engine.begin() as conn:
        if therapist_id is None:
            therapist_id = conn.execute(text(
                "INSERT INTO therapists (vendor_id, user_id, name, email, mobile, gender, specialization, rating, "
                "status) VALUES (:v, :u, :n, :e, '+919811111111', :g, :codes, :r, :s) RETURNING id"),
                {"v": vendor_id, "u": login, "n": name or f"Therapist {secrets.token_hex(2)}",
                 "e": f"{uuid.uuid4().hex}@dispatch.test", "g": gender, "codes": list(codes), "r": Decimal(rating),
                 "s": status}).scalar_one()
        else:
            conn.execute(text("UPDATE therapists SET specialization = :codes, gender = :g, rating = :r, status = :s "
                              "WHERE id = :t"), {"codes": list(codes), "g": gender, "r": Decimal(rating), "s": status,
                                                 "t": therapist_id})
            conn.execute(text("DELETE FROM therapist_schedules WHERE therapist_id = :t"), {"t": therapist_id})
        if shift is not None:
            for day in days:
                conn.execute(text(
                    "INSERT INTO therapist_schedules (therapist_id, day_of_week, start_time, end_time, break_start, "
                    "break_end) VALUES (:t, :d, :s, :e, :bs, :be)"),
                    {"t": therapist_id, "d": day, "s": clock(shift[0]), "e": clock(shift[1]),
                     "bs": clock(rest[0]) if rest else None, "be": clock(rest[1]) if rest else None})
    return therapist_id


def leave(engine: Engine, therapist_id: uuid.UUID, start: dt.date, end: dt.date, status: str = "approved") -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO therapist_leaves (therapist_id, leave_type, start_date, end_date, reason, "
                          "status) VALUES (:t, 'casual', :s, :e, 'family', :st)"),
                     {"t": therapist_id, "s": start, "e": end, "st": status})


def customer(engine: Engine, *, gender: str | None = None, preferred: Sequence[uuid.UUID] = (),
             customer_id: uuid.UUID | None = None) -> uuid.UUID:
    customer_id = customer_id or user(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO customers (id, preferred_therapist_gender, preferred_therapists) VALUES (:id, :g, :p) "
            "ON CONFLICT (id) DO UPDATE SET preferred_therapist_gender = :g, preferred_therapists = :p"),
            {"id": customer_id, "g": gender, "p": list(preferred) or None})
    return customer_id


def booking(engine: Engine, *, vendor_id: uuid.UUID, customer_id: uuid.UUID, day: dt.date, at: str,
            service_id: uuid.UUID, minutes: int = 60, point: tuple[float, float] | None = PUNE,
            status: str = "confirmed") -> uuid.UUID:
    location: dict[str, Any] = {"address": "12 Koregaon Park, Pune", "city": "Pune"}
    if point is not None:
        location.update(latitude=point[0], longitude=point[1])
    with engine.begin() as conn:
        booking_id = conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time, status, subtotal_amount, tax_amount, total_amount) VALUES (:n, :c, :v, "
            "'home_service', :l, :d, :t, :s, 1500, 270, 1770) RETURNING id"),
            {"n": f"TST-{secrets.token_hex(6)}", "c": customer_id, "v": vendor_id, "l": json.dumps(location), "d": day,
             "t": clock(at), "s": status}).scalar_one()
        conn.execute(text("INSERT INTO booking_items (booking_id, service_id, duration, price, subtotal) "
                          "VALUES (:b, :s, :m, 1500, 1500)"), {"b": booking_id, "s": service_id, "m": minutes})
    return booking_id


def assignment(engine: Engine, *, booking_id: uuid.UUID, therapist_id: uuid.UUID, day: dt.date, at: str,
               minutes: int = 60, point: tuple[float, float] | None = PUNE, status: str = "assigned",
               buffer_minutes: int = 0) -> uuid.UUID:
    with engine.begin() as conn:
        row = conn.execute(text("SELECT vendor_id, customer_id FROM bookings WHERE id = :b"), {"b": booking_id}).one()
        service_id = conn.execute(text("SELECT service_id FROM booking_items WHERE booking_id = :b LIMIT 1"),
                                  {"b": booking_id}).scalar_one()
        return conn.execute(text(
            "INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, service_id, "
            "assignment_date, assignment_time, status, location_address, location_latitude, location_longitude, "
            "estimated_duration, travel_buffer_minutes) VALUES (:b, :t, :v, :c, :s, :d, :at, :st, 'elsewhere', :lat, "
            ":lon, :m, :buf) RETURNING id"),
            {"b": booking_id, "t": therapist_id, "v": row.vendor_id, "c": row.customer_id, "s": service_id, "d": day,
             "at": clock(at), "st": status, "lat": point[0] if point else None, "lon": point[1] if point else None,
             "m": minutes, "buf": buffer_minutes}).scalar_one()


def position(engine: Engine, therapist_id: uuid.UUID, point: tuple[float, float], *,
             at: dt.datetime | None = None) -> None:
    """A ping (the trigger keeps the last position)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO therapist_locations (therapist_id, latitude, longitude, accuracy, timestamp) "
                          "VALUES (:t, :lat, :lon, 10, :at)"),
                     {"t": therapist_id, "lat": point[0], "lon": point[1], "at": at or dt.datetime.now(dt.UTC)})


def km_east(point: tuple[float, float], km: float) -> tuple[float, float]:
    """A point `km` kilometres east of `point` (near enough at these latitudes)."""
    return point[0], point[1] + km / (111.320 * math.cos(math.radians(point[0])))


@contextmanager
def as_worker(engine: Engine) -> Iterator[Session]:
    """A transaction as a job handler runs: the workers' role, committed at the end."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": None})
        yield session
