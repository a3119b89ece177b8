"""A bookable vendor (`Shop`, made by the bookings tests' `shop` fixture), booking request bodies
and promotions for the bookings API tests."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from tests.factories import dispatch as factory
from tests.factories.accounts import Account

# Open every day 09:00-21:00 except Sundays.
HOURS = {day: {"open": "09:00", "close": "21:00", "closed": False}
         for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")}
HOURS["sunday"] = {"open": "00:00", "close": "00:00", "closed": True}


@dataclass(frozen=True)
class Shop:
    vendor: Account
    therapist: Account
    service_id: uuid.UUID
    code: str
    addon_id: uuid.UUID


def next_weekday(weekday: int, weeks_ahead: int = 1) -> dt.date:
    """A date of that Python weekday (0 = Monday) at least a week ahead."""
    day = factory.today() + dt.timedelta(days=7 * weeks_ahead)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def booking_body(shop: Shop, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vendor_id": str(shop.vendor.id), "booking_type": "home_service",
        "service_location": {"address": "12 Koregaon Park, Pune", "latitude": 18.5362, "longitude": 73.8940},
        "booking_date": next_weekday(2).isoformat(), "booking_time": "11:00",
        "items": [{"service_id": str(shop.service_id), "duration": 90, "addon_ids": [str(shop.addon_id)]}],
    }
    body.update(changes)
    return body


def promotion(engine: Engine, marketer: Account, **values: Any) -> str:
    code = factory.code()
    row = {"code": code, "name": "Promo", "type": "percentage", "discount_value": Decimal("10"),
           "valid_from": dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
           "valid_to": dt.datetime.now(dt.UTC) + dt.timedelta(days=30), "created_by": marketer.id,
           "usage_limit_per_customer": 1, "total_usage_limit": None, "min_booking_amount": None,
           "max_discount_amount": None, "applicable_vendors": None, "applicable_services": None, **values}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO promotions (code, name, type, discount_value, valid_from, valid_to, created_by, "
            "usage_limit_per_customer, total_usage_limit, min_booking_amount, max_discount_amount, "
            "applicable_vendors, applicable_services) VALUES (:code, :name, :type, :discount_value, :valid_from, "
            ":valid_to, :created_by, :usage_limit_per_customer, :total_usage_limit, :min_booking_amount, "
            ":max_discount_amount, :applicable_vendors, :applicable_services)"), row)
    return code
