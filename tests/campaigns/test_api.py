"""The campaign endpoints: marketing creates, directors approve within budget, marketing sends,
pauses, resumes, cancels; preview and metrics; who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.messaging import Runtime
from tests.campaigns.helpers import run_queued
from tests.campaigns.provider_server import ProviderServer
from tests.factories.accounts import Account, client_for, make_account
from tests.factories.campaigns import a_city, add_customers

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def people(camp_engine: Engine) -> dict[str, Account]:
    return {role: make_account(camp_engine, role) for role in
            ("marketing_department", "directors", "customer_data", "customer", "super_admin")}


@pytest.fixture
def webapp(app_factory: Any, messaging_env: dict[str, str]) -> Any:
    return app_factory(**messaging_env)


def as_(webapp: Any, people: dict[str, Account], role: str) -> Any:
    return client_for(webapp, people[role])


def new_campaign(client: Any, city: str, budget: str = "1000.00", **extra: Any) -> Any:
    body = {"name": "Winter glow", "type": "multi_channel", "budget": budget,
            "content": {"email": {"subject": "Hi $first_name", "body": "Your $tier offer in $city"},
                        "sms": {"body": "Hi $first_name, 20% off in $city"}},
            "target_audience": {"city": [city], "tier": ["gold"]}, **extra}
    return client.post("/api/v1/campaigns", json=body)


def test_create_approve_send_and_measure(webapp: Any, people: dict[str, Account], rt: Runtime,
                                         server: ProviderServer) -> None:
    city = a_city()
    # Previews show small counts only as "fewer than 10" (docs/security.md): an audience above that.
    add_customers(rt.engine, 10, city=city, prefs={"email": True, "sms": True})
    add_customers(rt.engine, 2, city=city, prefs={"email": True, "sms": False})
    add_customers(rt.engine, 3, city=city, tier="silver")
    marketing, director = as_(webapp, people, "marketing_department"), as_(webapp, people, "directors")
    created = new_campaign(marketing, city)
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    assert created.json["status"] == "draft"
    assert marketing.post(f"/api/v1/campaigns/{campaign}/send").status_code == 409  # not approved yet
    assert marketing.post(f"/api/v1/campaigns/{campaign}/approve").status_code == 403  # not a director
    preview = marketing.get(f"/api/v1/campaigns/{campaign}/audience").json
    assert (preview["customers"], preview["listed"]) == (12, 0)
    assert preview["channels"]["email"] == {"recipients": 12, "unit_cost": "0.05", "cost": "0.60"}
    assert preview["channels"]["sms"] == {"recipients": 10, "unit_cost": "0.25", "cost": "2.50"}
    assert (preview["total_cost"], preview["within_budget"]) == ("3.10", True)
    approved = director.post(f"/api/v1/campaigns/{campaign}/approve")
    assert approved.status_code == 200 and approved.json["status"] == "scheduled"
    assert approved.json["approved_by"] == str(people["directors"].id)
    sent = marketing.post(f"/api/v1/campaigns/{campaign}/send", headers={"Idempotency-Key": "send-1"})
    assert sent.status_code == 202 and sent.json["kind"] == "campaigns.start"
    replay = marketing.post(f"/api/v1/campaigns/{campaign}/send", headers={"Idempotency-Key": "send-1"})
    assert replay.json["id"] == sent.json["id"] and replay.headers["Idempotent-Replayed"] == "true"
    assert marketing.post(f"/api/v1/campaigns/{campaign}/send").status_code == 409  # already running
    run_queued(rt, campaign)
    assert len(server.accepted("sendgrid")) == 12 and len(server.accepted("twilio")) == 10
    reader = as_(webapp, people, "customer_data")
    figures = reader.get(f"/api/v1/campaigns/{campaign}/metrics").json
    assert (figures["status"], figures["sent"], figures["failed"], figures["total"]) == ("completed", 22, 0, 22)
    assert figures["by_channel"]["sms"]["sent"] == 10
    assert reader.get(f"/api/v1/campaigns/{campaign}").json["metrics"]["sent"] == 22
    assert new_campaign(reader, city).status_code == 403  # customer_data reads only


def test_spend_guard_refuses_approval_with_the_figures(webapp: Any, people: dict[str, Account],
                                                        camp_engine: Engine) -> None:
    city = a_city()
    add_customers(camp_engine, 12, city=city)
    campaign = new_campaign(as_(webapp, people, "marketing_department"), city, budget="3.50").json["id"]
    refused = as_(webapp, people, "directors").post(f"/api/v1/campaigns/{campaign}/approve")
    assert refused.status_code == 422
    assert refused.json["detail"] == ("the audience would cost 3.60, above the budget of 3.50 "
                                      "(email: 12 x 0.05 = 0.60; sms: 12 x 0.25 = 3.00)")
    with camp_engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign}).scalar_one() == "draft"
    # A super admin is held to the same budget.
    assert as_(webapp, people, "super_admin").post(f"/api/v1/campaigns/{campaign}/approve").status_code == 422


def test_pause_resume_and_cancel_follow_the_state_machine(webapp: Any, people: dict[str, Account],
                                                          camp_engine: Engine) -> None:
    city = a_city()
    marketing = as_(webapp, people, "marketing_department")
    campaign = new_campaign(marketing, city).json["id"]
    assert marketing.post(f"/api/v1/campaigns/{campaign}/pause").status_code == 409  # a draft is not running
    assert as_(webapp, people, "directors").post(f"/api/v1/campaigns/{campaign}/approve").status_code == 200
    assert marketing.post(f"/api/v1/campaigns/{campaign}/send").status_code == 202
    paused = marketing.post(f"/api/v1/campaigns/{campaign}/pause")
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    assert marketing.post(f"/api/v1/campaigns/{campaign}/pause").status_code == 409
    resumed = marketing.post(f"/api/v1/campaigns/{campaign}/resume")
    assert resumed.status_code == 202 and resumed.json["kind"] == "campaigns.start"
    cancelled = marketing.post(f"/api/v1/campaigns/{campaign}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert marketing.post(f"/api/v1/campaigns/{campaign}/resume").status_code == 409
    assert marketing.post(f"/api/v1/campaigns/{campaign}/cancel").status_code == 409


def test_preview_before_saving(webapp: Any, people: dict[str, Account], camp_engine: Engine) -> None:
    city = a_city()
    add_customers(camp_engine, 11, city=city, prefs={"email": True, "sms": True, "whatsapp": True})
    add_customers(camp_engine, 2, city=city, prefs={"email": False, "sms": True})
    body = {"type": "multi_channel", "target_audience": {"city": [city]},
            "content": {"email": {"subject": "s", "body": "b"}, "whatsapp": {"body": "w"}}}
    preview = as_(webapp, people, "customer_data").post("/api/v1/campaigns/preview", json=body)
    assert preview.status_code == 200
    assert {ch: v["recipients"] for ch, v in preview.json["channels"].items()} == {"email": 11, "whatsapp": 11}
    assert preview.json["total_cost"] == "9.35"  # 11 x 0.05 + 11 x 0.80


@pytest.mark.parametrize(("change", "field"), [
    ({"content": {"email": {"subject": "Hi ${first_name}", "body": "Dear $surname"}}}, None),
    ({"content": {"sms": {"body": "Costs $5"}}}, None),
    ({"type": "email", "content": {"sms": {"body": "hi"}}}, None),
    ({"target_audience": {"tier": ["bronze"]}}, "target_audience"),
    ({"budget": "-1"}, "budget"),
    ({"end_date": "2026-01-01T00:00:00+05:30", "start_date": "2026-02-01T00:00:00+05:30"}, None),
])
def test_invalid_campaigns_are_refused(webapp: Any, people: dict[str, Account], change: dict[str, Any],
                                       field: str | None) -> None:
    response = new_campaign(as_(webapp, people, "marketing_department"), a_city(), **change)
    assert response.status_code == 422, response.json
    if field:
        assert field in response.json["errors"]


def test_a_customer_cannot_see_campaigns(webapp: Any, people: dict[str, Account]) -> None:
    customer = as_(webapp, people, "customer")
    assert customer.get("/api/v1/campaigns").status_code == 403
    assert customer.post("/api/v1/campaigns/preview", json={}).status_code == 403
