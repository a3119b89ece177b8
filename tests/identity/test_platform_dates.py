"""Dates an account records are the platform's (Asia/Kolkata), read on the database's clock: from
18:30 to 24:00 UTC the IST date is already the next one (`make test-clock CLOCK_SCENARIOS=month-end`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import client_for
from tests.factories.identity import new_customer

PLATFORM_TODAY = "SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date"


def _platform_today(engine: Engine) -> dt.date:
    with engine.connect() as conn:
        return conn.execute(text(PLATFORM_TODAY)).scalar_one()


def test_a_new_customers_membership_starts_on_the_platforms_date(app: Any, engine: Engine) -> None:
    body = new_customer()
    days = {_platform_today(engine)}  # before and after: midnight may fall between
    assert client_for(app).post("/api/v1/auth/register", json=body).status_code == 202
    days.add(_platform_today(engine))
    with engine.connect() as conn:
        started = conn.execute(text("SELECT c.membership_start_date FROM customers c JOIN auth.users u ON u.id = c.id "
                                    "WHERE u.email = :e"), {"e": body["email"]}).scalar_one()
    assert started in days, (started, days)
