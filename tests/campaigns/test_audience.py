"""target_audience as SQL: each filter, their combination, the explicit list, opt-outs per channel,
suspended accounts, each customer once; the per-channel counts and the cost estimate."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.campaigns import audience
from ombaro.campaigns.audience import InvalidTarget, Target
from tests.factories.campaigns import a_city, add_customers, booked, clock

pytestmark = pytest.mark.db


def years_ago(today: dt.date, years: int, days: int = 0) -> dt.date:
    """The date `years` whole years before `today` (28 February for a 29 February), moved `days` later."""
    try:
        day = today.replace(year=today.year - years)
    except ValueError:
        day = today.replace(year=today.year - years, day=28)
    return day + dt.timedelta(days=days)


def selected(engine: Engine, raw: dict[str, Any], channel: str | None = None) -> set[uuid.UUID]:
    params: dict[str, Any] = {}
    today, now = clock(engine)
    where = audience.audience_where(Target.parse(raw), today=today, now=now, params=params)
    if channel:
        where += f" AND {audience.ELIGIBLE[channel]}"
    with engine.connect() as conn:
        return set(conn.execute(text(f"SELECT c.id FROM {audience.FROM_CUSTOMERS} WHERE {where}"), params).scalars())


def ids(people: list[Any]) -> set[uuid.UUID]:
    return {p.id for p in people}


def test_tier_filter(camp_engine: Engine) -> None:
    city = a_city()
    gold = add_customers(camp_engine, 2, city=city, tier="gold")
    add_customers(camp_engine, 2, city=city, tier="silver")
    assert selected(camp_engine, {"city": [city], "tier": ["gold"]}) == ids(gold)
    assert selected(camp_engine, {"city": city, "tier": "gold"}) == ids(gold)  # the single-value spelling


def test_city_filter_is_case_insensitive(camp_engine: Engine) -> None:
    city = a_city()
    here = add_customers(camp_engine, 2, city=city)
    add_customers(camp_engine, 1, city=a_city())
    assert selected(camp_engine, {"city": [city.upper()]}) == ids(here)


def test_age_range_in_whole_years_on_the_platform_date(camp_engine: Engine) -> None:
    city = a_city()
    today, _ = clock(camp_engine)
    twenty_five = add_customers(camp_engine, 1, city=city, born=years_ago(today, 25))  # 25 today
    almost = add_customers(camp_engine, 1, city=city, born=years_ago(today, 25, days=1))  # 24 until tomorrow
    forty = add_customers(camp_engine, 1, city=city, born=years_ago(today, 41, days=1))  # 40, 41 tomorrow
    forty_one = add_customers(camp_engine, 1, city=city, born=years_ago(today, 41))  # 41 today
    chosen = selected(camp_engine, {"city": [city], "age_range": {"min": 25, "max": 40}})
    assert chosen == ids(twenty_five) | ids(forty)
    assert not chosen & (ids(almost) | ids(forty_one))


def test_days_since_last_booking(camp_engine: Engine) -> None:
    city = a_city()
    lapsed, recent, cancelled_only, never = (add_customers(camp_engine, 1, city=city) for _ in range(4))
    booked(camp_engine, lapsed[0].id, 90)
    booked(camp_engine, recent[0].id, 90)
    booked(camp_engine, recent[0].id, 5)
    booked(camp_engine, cancelled_only[0].id, 5, status="cancelled")
    booked(camp_engine, cancelled_only[0].id, 120)
    assert selected(camp_engine, {"city": [city], "days_since_last_booking": {"min": 60}}) == \
        ids(lapsed) | ids(cancelled_only)  # a cancelled booking is not a booking
    assert selected(camp_engine, {"city": [city], "last_booking_days": 60}) == ids(lapsed) | ids(cancelled_only)
    assert selected(camp_engine, {"city": [city], "days_since_last_booking": {"max": 30}}) == ids(recent)
    assert not selected(camp_engine, {"city": [city], "days_since_last_booking": {"min": 0}}) & ids(never)


def test_filters_combine_and_the_explicit_list_is_added(camp_engine: Engine) -> None:
    city = a_city()
    today, _ = clock(camp_engine)
    match = add_customers(camp_engine, 1, city=city, tier="platinum", born=years_ago(today, 36))
    wrong_tier = add_customers(camp_engine, 1, city=city, tier="silver", born=years_ago(today, 36))
    too_young = add_customers(camp_engine, 1, city=city, tier="platinum", born=years_ago(today, 20))
    elsewhere = add_customers(camp_engine, 1, city=a_city(), tier="silver")
    booked(camp_engine, match[0].id, 100)
    booked(camp_engine, too_young[0].id, 100)
    raw = {"city": [city], "tier": ["platinum", "diamond"], "age_range": {"min": 30}, "last_booking_days": 60}
    assert selected(camp_engine, raw) == ids(match)
    listed = {**raw, "customer_ids": [str(elsewhere[0].id), str(match[0].id)]}
    assert selected(camp_engine, listed) == ids(match) | ids(elsewhere)  # each once
    assert selected(camp_engine, {"customer_ids": [str(wrong_tier[0].id)]}) == ids(wrong_tier)


def test_suspended_and_inactive_accounts_are_left_out(camp_engine: Engine) -> None:
    city = a_city()
    active = add_customers(camp_engine, 1, city=city)
    add_customers(camp_engine, 1, city=city, status="suspended")
    add_customers(camp_engine, 1, city=city, status="inactive")
    assert selected(camp_engine, {"city": [city]}) == ids(active)


def test_opt_outs_per_channel(camp_engine: Engine) -> None:
    city = a_city()
    everything = add_customers(camp_engine, 1, city=city, prefs={"email": True, "sms": True, "whatsapp": True,
                                                                  "push": True})
    no_email = add_customers(camp_engine, 1, city=city, prefs={"email": False, "sms": True})
    no_sms = add_customers(camp_engine, 1, city=city, prefs={"email": True, "sms": False})
    unset = add_customers(camp_engine, 1, city=city, prefs={})
    raw = {"city": [city]}
    assert selected(camp_engine, raw, "email") == ids(everything) | ids(no_sms) | ids(unset)
    assert selected(camp_engine, raw, "sms") == ids(everything) | ids(no_email) | ids(unset)
    # WhatsApp needs an opt-in; push needs a registered device.
    assert selected(camp_engine, raw, "whatsapp") == ids(everything)
    assert selected(camp_engine, raw, "push") == set()
    with camp_engine.begin() as conn:
        conn.execute(text("INSERT INTO push_devices (user_id, token) VALUES (:u, :t)"),
                     {"u": everything[0].id, "t": f"device-{uuid.uuid4()}"})
    assert selected(camp_engine, raw, "push") == ids(everything)


def test_counts_per_channel_and_cost_estimate(camp_engine: Engine) -> None:
    city = a_city()
    add_customers(camp_engine, 3, city=city, prefs={"email": True, "sms": True})
    add_customers(camp_engine, 2, city=city, prefs={"email": True, "sms": False})
    today, now = clock(camp_engine)
    with Session(camp_engine) as session:
        found = audience.count_by_channel(session, Target.parse({"city": [city]}), ["email", "sms"], today=today,
                                          now=now)
    assert found == {"email": 5, "sms": 3, "customers": 5}
    figures = audience.estimate(found, {"email": Decimal("0.05"), "sms": Decimal("0.255")}, ["email", "sms"])
    # 3 x 0.255 = 0.765 rounds half-up to 0.77, once per channel line
    assert figures.costs == {"email": Decimal("0.25"), "sms": Decimal("0.77")}
    assert figures.total == Decimal("1.02")


@pytest.mark.parametrize("raw", [
    {"tier": ["bronze"]}, {"age_range": {"min": 40, "max": 30}}, {"age_range": "young"},
    {"customer_ids": ["not-a-uuid"]}, {"favourite_colour": "blue"},
    {"last_booking_days": 30, "days_since_last_booking": {"min": 10}},
])
def test_malformed_target_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(InvalidTarget):
        Target.parse(raw)
