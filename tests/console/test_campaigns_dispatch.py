"""The campaigns and dispatch pages of the console, driven through the forms as staff use them."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.factories import dispatch as factory
from tests.factories.campaigns import a_city, add_customers
from tests.factories.console import signed_in

pytestmark = pytest.mark.db


def campaign_form(name: str, city: str, **change: str) -> dict[str, Any]:
    return {"name": name, "type": "multi_channel", "budget": "1000.00", "city": city, "tier": "gold",
            "email_subject": "Hi $first_name", "email_body": "Your $tier offer in $city",
            "sms_body": "Hi $first_name, 20% off in $city", **change}


def campaigns_named(engine: Engine, name: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id, status FROM campaigns WHERE name = :n"), {"n": name}))


def test_marketing_previews_creates_a_director_approves_and_sending_shows_the_funnel(app: Any,
                                                                                    engine: Engine) -> None:
    city, name = a_city(), f"Winter glow {secrets.token_hex(3)}"
    # Previews show small counts only as "fewer than 10" (docs/security.md): an audience above that.
    add_customers(engine, 10, city=city, prefs={"email": True, "sms": True})
    add_customers(engine, 2, city=city, prefs={"email": True, "sms": False})
    marketing = signed_in(app, engine, "marketing_department")
    listing = marketing.get("/console/campaigns")
    assert listing.status_code == 200 and "New campaign" in listing.get_data(as_text=True)

    preview = marketing.post("/console/campaigns", {**campaign_form(name, city), "action": "preview"})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Audience preview" in page
    assert re.search(r'data-channel="email"><td>email</td><td class="num">12<', page)
    assert re.search(r'data-channel="sms"><td>sms</td><td class="num">10<', page)
    assert campaigns_named(engine, name) == []  # a preview saves nothing

    created = marketing.post("/console/campaigns", {**campaign_form(name, city), "action": "create"})
    assert created.status_code == 302, created.get_data(as_text=True)
    [(campaign_id, status)] = campaigns_named(engine, name)
    assert status == "draft" and created.headers["Location"].endswith(f"/console/campaigns/{campaign_id}")
    draft = marketing.get(f"/console/campaigns/{campaign_id}").get_data(as_text=True)
    assert name in draft and ">Approve<" not in draft  # marketing may not approve

    director = signed_in(app, engine, "directors")
    assert ">Approve<" in director.get(f"/console/campaigns/{campaign_id}").get_data(as_text=True)
    approved = director.post(f"/console/campaigns/{campaign_id}/approve")
    assert approved.status_code == 302
    assert campaigns_named(engine, name)[0].status == "scheduled"

    assert marketing.post(f"/console/campaigns/{campaign_id}/send").status_code == 302
    assert campaigns_named(engine, name)[0].status == "active"
    sending = marketing.get(f"/console/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="funnel-live"' in sending and 'data-live="true"' in sending and "<svg" in sending
    assert ">Pause<" in sending and ">Send now<" not in sending
    fragment = marketing.get(f"/console/campaigns/{campaign_id}/funnel")
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and body.startswith('<div class="card" id="funnel-live"')
    assert all(step in body for step in ("Deliveries", "Sent", "Delivered", "Opened", "Clicked", "Failed"))
    assert "Winter glow" in marketing.get("/console/campaigns").get_data(as_text=True)


def test_an_invalid_campaign_shows_the_field_errors_and_creates_nothing(app: Any, engine: Engine) -> None:
    marketing = signed_in(app, engine, "marketing_department")
    name = f"Broken {secrets.token_hex(3)}"
    refused = marketing.post("/console/campaigns", {**campaign_form(name, a_city(), budget="-1"), "action": "create"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "budget:" in page and 'value="Broken' in page  # the error, and the form kept as typed
    assert campaigns_named(engine, name) == []
    bad_content = marketing.post("/console/campaigns", {**campaign_form(name, a_city(), type="email"),
                                                        "action": "create"})
    assert bad_content.status_code == 422 and "flash error" in bad_content.get_data(as_text=True)
    assert campaigns_named(engine, name) == []


def test_roles_without_campaigns_are_refused(app: Any, engine: Engine) -> None:
    hr = signed_in(app, engine, "hr_department")
    assert hr.get("/console/campaigns").status_code == 403
    assert hr.post("/console/campaigns", {"action": "create", "name": "x"}).status_code == 403
    assert hr.get("/console/dispatch").status_code == 403


def test_dispatch_lists_unassigned_runs_a_batch_and_maps_assignments(app: Any, engine: Engine) -> None:
    vendor = factory.vendor(engine)
    service_id, code = factory.service(engine)
    customer = factory.customer(engine)
    waiting = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=factory.today(), at="20:00",
                              service_id=service_id)
    ops = signed_in(app, engine, "fo_department")

    page = ops.get("/console/dispatch")  # today, in the platform's zone
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f'data-booking="{waiting}"' in html
    assert f'value="{factory.today().isoformat()}"' in html and "Run batch dispatch" in html

    started = ops.post("/console/dispatch/batch", {"date": factory.today().isoformat(), "vendor_id": str(vendor)})
    assert started.status_code == 302
    job_id = uuid.UUID(started.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with engine.connect() as conn:
        job = conn.execute(text("SELECT kind, params FROM jobs WHERE id = :j"), {"j": job_id}).one()
    assert job.kind == "dispatch.batch" and job.params["vendor_id"] == str(vendor)

    refused = ops.post("/console/dispatch/batch", {"date": factory.today().isoformat()})  # no city, no vendor
    assert refused.status_code == 302 and "/console/dispatch" in refused.headers["Location"]
    assert "vendor_id or city" in ops.get(refused.headers["Location"]).get_data(as_text=True)

    day = factory.a_day_ahead(30)
    therapist = factory.therapist(engine, vendor, codes=[code])
    factory.position(engine, therapist, factory.km_east(factory.PUNE, 3))
    for at, km in (("10:00", 2.5), ("13:00", 4.0)):
        booked = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=day, at=at,
                                 service_id=service_id, status="assigned")
        assignment = factory.assignment(engine, booking_id=booked, therapist_id=therapist, day=day, at=at,
                                        point=factory.km_east(factory.PUNE, km))
        with engine.begin() as conn:
            conn.execute(text("UPDATE therapist_assignments SET dispatch_decision = :d WHERE id = :a"),
                         {"d": json.dumps({"winner": {"distance_km": km}}), "a": assignment})
    mapped = ops.get(f"/console/dispatch?date={day.isoformat()}&vendor_id={vendor}").get_data(as_text=True)
    svg = mapped[mapped.index('<div class="card" id="map">'):]
    assert '<svg class="chart"' in svg and svg.count("<line ") == 2 and svg.count("<circle ") == 3
    assert re.search(rf'title="{therapist}">[0-9a-f]{{8}}</td><td class="num">2</td><td class="num">6.5</td>'
                     r'<td class="num">3.25</td>', mapped.replace("\n", "").replace("  ", ""))
