"""Object-level access through the API: each tenant sees its own rows, and only those."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import client_for, make_account
from tests.factories.identity import World


def test_customer_fetching_another_customers_booking_gets_404(app: Any, world: World) -> None:
    client = client_for(app, world.customer_1)
    assert client.get(f"/api/v1/bookings/{world.booking_1}").status_code == 200
    other = client.get(f"/api/v1/bookings/{world.booking_2}")
    assert other.status_code == 404
    assert other.content_type == "application/problem+json"
    listed = {b["id"] for b in client.get("/api/v1/bookings").json}
    assert listed == {str(world.booking_1)}


def test_vendor_sees_only_its_own_therapists_and_settlements(app: Any, world: World) -> None:
    client = client_for(app, world.vendor_a)
    therapists = {t["id"] for t in client.get("/api/v1/therapists").json}
    assert therapists == {str(world.therapist_a.therapist_id)}
    assert client.get(f"/api/v1/therapists/{world.therapist_b.therapist_id}").status_code == 404
    settlements = {s["id"] for s in client.get("/api/v1/settlements").json}
    assert settlements == {str(world.settlement_a)}
    assert client.get(f"/api/v1/settlements/{world.settlement_b}").status_code == 404


def test_therapist_sees_only_their_assignments(app: Any, world: World) -> None:
    assignments = client_for(app, world.therapist_a).get("/api/v1/assignments").json
    assert [a["booking_id"] for a in assignments] == [str(world.booking_1)]
    assert {a["therapist_id"] for a in assignments} == {str(world.therapist_a.therapist_id)}


def test_hr_cannot_read_vendor_settlements(app: Any, world: World, engine: Engine) -> None:
    hr = make_account(engine, "hr_department")
    response = client_for(app, hr).get("/api/v1/settlements")
    assert response.status_code == 403
    assert client_for(app, hr).get(f"/api/v1/settlements/{world.settlement_a}").status_code == 403


def test_customer_care_cannot_change_a_payout(app: Any, world: World, engine: Engine) -> None:
    """No endpoint grants customer care settlements:approve, and the database refuses the write
    even if a handler tried it under customer care's claims."""
    care = make_account(engine, "customer_care")
    from ombaro.access.permissions import allowed_by, default_grants

    assert not allowed_by(default_grants(), "customer_care", "settlements", "approve")
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL ROLE ombaro_api"))
        conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                     {"c": f'{{"sub": "{care.id}", "role": "customer_care"}}'})
        changed = conn.execute(text("UPDATE payment_settlements SET status = 'completed', payment_reference = 'X' "
                                    "WHERE id = :id"), {"id": world.settlement_a}).rowcount
    assert changed == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM payment_settlements WHERE id = :id"),
                            {"id": world.settlement_a}).scalar_one() == "pending"


def test_finance_sees_every_vendors_settlements(app: Any, world: World, engine: Engine) -> None:
    finance = make_account(engine, "finance_department")
    seen = {s["id"] for s in client_for(app, finance).get("/api/v1/settlements?limit=200").json}
    assert {str(world.settlement_a), str(world.settlement_b)} <= seen


def test_vendor_and_therapist_list_only_their_bookings(app: Any, world: World) -> None:
    for account in (world.vendor_a, world.therapist_a):
        listed = {b["id"] for b in client_for(app, account).get("/api/v1/bookings").json}
        assert listed == {str(world.booking_1)}, account.role
    assert {b["id"] for b in client_for(app, world.vendor_b).get("/api/v1/bookings").json} == {str(world.booking_2)}
