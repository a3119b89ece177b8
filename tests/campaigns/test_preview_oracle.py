"""Counting oracle (docs/security.md): an audience count must not tell whether a chosen customer
matches a filter, is active or has opted out. Explicit ids are listed, never looked up; the filters'
audience is counted without them; small counts are shown as a floor; the approval's spend guard
decides on the same figures."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.factories.accounts import Account, client_for, make_account
from tests.factories.campaigns import a_city, add_customers

pytestmark = pytest.mark.db

CONTENT = {"email": {"subject": "s", "body": "b"}, "sms": {"body": "t"}}


@pytest.fixture(scope="module")
def people(camp_engine: Engine) -> dict[str, Account]:
    return {role: make_account(camp_engine, role) for role in ("marketing_department", "directors")}


@pytest.fixture
def marketing(app_factory: Any, messaging_env: dict[str, str], people: dict[str, Account]) -> Any:
    return client_for(app_factory(**messaging_env), people["marketing_department"])


def preview(client: Any, target: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/api/v1/campaigns/preview", json={"type": "multi_channel", "content": CONTENT,
                                                              "target_audience": target})
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_filter_with_a_chosen_customer_says_the_same_whether_they_match_or_not(
        marketing: Any, camp_engine: Engine) -> None:
    city = a_city()
    add_customers(camp_engine, 20, city=city, tier="gold")
    (matching,) = add_customers(camp_engine, 1, city=city, tier="gold")
    (elsewhere,) = add_customers(camp_engine, 1, city=a_city(), tier="gold")
    (silver,) = add_customers(camp_engine, 1, city=city, tier="silver")
    (opted_out,) = add_customers(camp_engine, 1, city=city, tier="gold", prefs={"email": False, "sms": False})
    (suspended,) = add_customers(camp_engine, 1, city=city, tier="gold", status="suspended")
    target = {"city": [city], "tier": ["gold"]}
    answers = {who.id: preview(marketing, {**target, "customer_ids": [str(who.id)]})
               for who in (matching, elsewhere, silver, opted_out, suspended)}
    answers[uuid.uuid4()] = preview(marketing, {**target, "customer_ids": [str(uuid.uuid4())]})
    assert len({repr(a) for a in answers.values()}) == 1, answers  # one answer for all six
    one = answers[matching.id]
    # The filter reaches 21 (20 + the matching one; the opted-out and suspended ones not at all);
    # the chosen id is listed and costed, never counted.
    assert (one["customers"], one["listed"]) == (21, 1)
    assert one["channels"]["email"] == {"recipients": 21, "unit_cost": "0.05", "cost": "1.10"}  # (21 + 1) x 0.05


def test_chosen_customers_alone_are_listed_not_looked_up(marketing: Any, camp_engine: Engine) -> None:
    (active,) = add_customers(camp_engine, 1, city=a_city())
    (suspended,) = add_customers(camp_engine, 1, city=a_city(), status="suspended")
    (silent,) = add_customers(camp_engine, 1, city=a_city(), prefs={"email": False, "sms": False})
    answers = [preview(marketing, {"customer_ids": [str(i)]})
               for i in (active.id, suspended.id, silent.id, uuid.uuid4())]
    assert all(a == answers[0] for a in answers), answers
    assert (answers[0]["customers"], answers[0]["listed"]) == (0, 1)
    assert answers[0]["channels"]["sms"] == {"recipients": 0, "unit_cost": "0.25", "cost": "0.25"}


def test_small_audiences_are_shown_as_a_floor_and_costed_at_its_bound(marketing: Any, camp_engine: Engine) -> None:
    city = a_city()
    empty = preview(marketing, {"city": [city]})
    add_customers(camp_engine, 1, city=city, born=dt.date(1987, 3, 9))
    one = preview(marketing, {"city": [city]})
    add_customers(camp_engine, 8, city=city)
    nine = preview(marketing, {"city": [city]})
    assert empty == one == nine  # nobody, one person and nine people look alike
    assert nine["customers"] == "fewer than 10" and nine["channels"]["email"]["recipients"] == "fewer than 10"
    assert nine["channels"]["email"]["cost"] == "0.45"  # 9 x 0.05: never below the real spend
    add_customers(camp_engine, 1, city=city)
    assert preview(marketing, {"city": [city]})["customers"] == 10


def test_approval_decides_and_records_the_same_figures(
        app_factory: Any, messaging_env: dict[str, str], people: dict[str, Account], camp_engine: Engine) -> None:
    """A director cannot turn the spend guard into the oracle: with a budget between "x matches"
    and "x does not", the answer is the same either way."""
    webapp = app_factory(**messaging_env)
    marketing, director = (client_for(webapp, people[r]) for r in ("marketing_department", "directors"))
    city = a_city()
    add_customers(camp_engine, 12, city=city, prefs={"email": True, "sms": False})
    (inside,) = add_customers(camp_engine, 1, city=city, prefs={"email": True, "sms": False})
    (outside,) = add_customers(camp_engine, 1, city=a_city(), prefs={"email": True, "sms": False})
    outcomes = []
    for chosen in (inside, outside):
        created = marketing.post("/api/v1/campaigns", json={
            "name": "Probe", "type": "email", "content": {"email": {"subject": "s", "body": "b"}},
            "target_audience": {"city": [city], "customer_ids": [str(chosen.id)]}, "budget": "0.67"})
        assert created.status_code == 201, created.json
        answer = director.post(f"/api/v1/campaigns/{created.json['id']}/approve")
        outcomes.append((answer.status_code, answer.json.get("detail"), answer.json.get("metrics")))
    assert outcomes[0] == outcomes[1]
    # 13 counted + 1 listed = 14 x 0.05 = 0.70 > 0.67, whether the chosen one is among the 13 or not.
    assert outcomes[0][:2] == (422, "the audience would cost 0.70, above the budget of 0.67 (email: 14 x 0.05 = 0.70)")
    created = marketing.post("/api/v1/campaigns", json={
        "name": "Small", "type": "email", "content": {"email": {"subject": "s", "body": "b"}},
        "target_audience": {"city": [a_city()]}, "budget": "1.00"})
    approved = director.post(f"/api/v1/campaigns/{created.json['id']}/approve")
    assert approved.status_code == 200
    assert approved.json["metrics"]["estimate"]["customers"] == "fewer than 10"
    with camp_engine.connect() as conn:
        stored = conn.execute(text("SELECT metrics -> 'estimate' FROM campaigns WHERE id = :c"),
                              {"c": created.json["id"]}).scalar_one()
    assert stored["channels"]["email"]["recipients"] == "fewer than 10"
