"""One-click unsubscribe: the link in a campaign email works once, without logging in, and cannot be
made to unsubscribe another customer."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.campaigns import unsubscribe
from ombaro.messaging import Runtime
from tests.campaigns.helpers import PUBLIC_BASE, start_and_run
from tests.campaigns.provider_server import ProviderServer
from tests.factories.campaigns import a_city, add_campaign, add_customers

pytestmark = pytest.mark.db


@pytest.fixture
def anon(app_factory: Any, messaging_env: dict[str, str]) -> Any:
    return app_factory(**messaging_env).test_client()


def email_links(rt: Runtime, server: ProviderServer, n: int = 2) -> list[tuple[Any, str]]:
    """(customer, unsubscribe path) of a campaign email each of `n` customers received."""
    city = a_city()
    people = add_customers(rt.engine, n, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="email",
                            content={"email": {"subject": "Offer", "body": "Hello $first_name"}})
    start_and_run(rt, campaign)
    by_address = {m.to: m for m in server.accepted("sendgrid")}
    return [(p, by_address[p.email].headers["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC_BASE))
            for p in people]


def email_pref(engine: Engine, customer: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT communication_preferences ->> 'email' FROM customers WHERE id = :c"),
                            {"c": customer}).scalar_one()


def test_one_click_unsubscribe_works_once(anon: Any, rt: Runtime, server: ProviderServer) -> None:
    (person, path), _ = email_links(rt, server)
    page = anon.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200 and b"<form method='post'>" in page.data
    assert anon.get(path).json == {"channel": "email", "used": False}  # a GET changes nothing
    assert email_pref(rt.engine, person.id) == "true"
    # What a mail client's one-click POST (RFC 8058) sends.
    done = anon.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200 and done.json == {"unsubscribed": True, "channel": "email"}
    assert email_pref(rt.engine, person.id) == "false"
    # The customer opts in again; the old link does not undo that.
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE customers SET communication_preferences = communication_preferences || "
                          "'{\"email\": true}' WHERE id = :c"), {"c": person.id})
    again = anon.post(path)
    assert again.status_code == 410 and again.headers["Content-Type"] == "application/problem+json"
    assert email_pref(rt.engine, person.id) == "true"
    assert anon.get(path).json == {"channel": "email", "used": True}


def test_link_cannot_be_forged_for_another_customer(anon: Any, rt: Runtime, server: ProviderServer) -> None:
    (victim, victim_path), (attacker, attacker_path) = email_links(rt, server)
    secret = rt.settings.messaging.unsubscribe_secret
    attacker_delivery, _ = unsubscribe.verify(secret, attacker_path.rsplit("/", 1)[1])
    victim_delivery, _ = unsubscribe.verify(secret, victim_path.rsplit("/", 1)[1])
    payload, signature = attacker_path.rsplit("/", 1)[1].split(".")
    swapped_customer = unsubscribe._b64(struct.pack(">Q", attacker_delivery) + victim.id.bytes) + "." + signature
    swapped_delivery = unsubscribe._b64(struct.pack(">Q", victim_delivery) + victim.id.bytes) + "." + signature
    forged = {
        "other customer, same signature": swapped_customer,
        "other delivery, same signature": swapped_delivery,
        "signed with another secret": unsubscribe.sign(b"not the secret", victim_delivery, victim.id),
        "attacker's delivery, victim's id, right secret": unsubscribe.sign(secret, attacker_delivery, victim.id),
        "truncated": payload,
        "garbage": "customer",
    }
    answers = {name: anon.post(f"/api/v1/unsubscribe/{token}").status_code for name, token in forged.items()}
    assert answers == dict.fromkeys(forged, 404)
    assert email_pref(rt.engine, victim.id) == "true"
    assert anon.post(attacker_path).status_code == 200  # the attacker's own link only reaches the attacker
    assert email_pref(rt.engine, victim.id) == "true" and email_pref(rt.engine, attacker.id) == "false"
