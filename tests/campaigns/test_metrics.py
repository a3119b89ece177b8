"""Campaign metrics from deliveries, and conversions: bookings made within the attribution window
after the campaign reached the customer, last touch."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, text

from ombaro.campaigns import metrics
from ombaro.messaging import Runtime
from tests.campaigns.helpers import start_and_run
from tests.campaigns.provider_server import ProviderServer
from tests.factories.campaigns import a_city, add_campaign, add_customers, booked

pytestmark = pytest.mark.db

EMAIL = {"email": {"subject": "Offer", "body": "Hello"}}


def reached(engine: Engine, campaign: uuid.UUID, days_ago: float, customer: uuid.UUID | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE message_deliveries SET sent_at = now() - make_interval(secs => :s) "
                          "WHERE campaign_id = :c AND (CAST(:u AS uuid) IS NULL OR user_id = :u)"),
                     {"s": days_ago * 86400, "c": campaign, "u": customer})


def booking_at(engine: Engine, customer: uuid.UUID, days_ago: float, status: str = "confirmed") -> None:
    booked(engine, customer, 0, status=status)
    with engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET created_at = now() - make_interval(secs => :s) WHERE id = "
                          "(SELECT id FROM bookings WHERE customer_id = :c ORDER BY created_at DESC LIMIT 1)"),
                     {"s": days_ago * 86400, "c": customer})


def test_conversions_are_bookings_within_the_window_last_touch(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    a, b, c, d = add_customers(rt.engine, 4, city=city, prefs={"email": True, "sms": False})
    first = add_campaign(rt.engine, city=city, ctype="email", content=EMAIL)
    start_and_run(rt, first)
    reached(rt.engine, first, 3)
    second = add_campaign(rt.engine, ctype="email", content=EMAIL, target={"customer_ids": [str(c.id)]})
    start_and_run(rt, second)
    reached(rt.engine, second, 2.5)
    booking_at(rt.engine, a.id, 2)  # within 7 days of the first campaign
    booking_at(rt.engine, a.id, 1)  # a second booking counts too
    booking_at(rt.engine, a.id, 1, status="cancelled")  # not a conversion
    booking_at(rt.engine, b.id, 4)  # before the campaign reached them
    booking_at(rt.engine, c.id, 2)  # the second campaign reached c last
    booking_at(rt.engine, d.id, 3 - 8)  # 8 days after: outside the window (in the future here, still outside)
    with rt.engine.connect() as conn:
        first_figures = metrics.compute(conn, first, attribution_days=7)
        second_figures = metrics.compute(conn, second, attribution_days=7)
    assert first_figures["converted"] == 2
    assert second_figures["converted"] == 1
    assert (first_figures["sent"], first_figures["by_channel"]["email"]["sent"]) == (4, 4)


def test_metrics_count_the_furthest_status_of_each_delivery(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 6, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="email", content=EMAIL)
    start_and_run(rt, campaign)
    with rt.engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM message_deliveries WHERE campaign_id = :c ORDER BY id"),
                           {"c": campaign}).scalars().all()
        for delivery, status in zip(ids, ("delivered", "opened", "clicked", "bounced", "sent", "sent"), strict=True):
            conn.execute(text("UPDATE message_deliveries SET status = :s WHERE id = :d"), {"s": status, "d": delivery})
    refreshed = metrics.refresh(rt, campaign)
    assert {k: refreshed[k] for k in ("sent", "delivered", "opened", "clicked", "failed", "bounced")} == {
        "sent": 6, "delivered": 3, "opened": 2, "clicked": 1, "failed": 1, "bounced": 1}
    with rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT metrics FROM campaigns WHERE id = :c"), {"c": campaign}).scalar_one()
    assert stored["clicked"] == 1 and stored["computed_at"] == refreshed["computed_at"]
    assert dt.datetime.fromisoformat(stored["computed_at"]) <= dt.datetime.now(dt.UTC)
