"""An assignment's life through the API, the booking following it, and the customer's rating."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.factories import dispatch as factory
from tests.factories.accounts import Account, client_for, make_account


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.fixture
def job(engine: Engine) -> dict[str, Any]:
    """A therapist (with a login) assigned to a customer's booking of a vendor (with a login)."""
    vendor = make_account(engine, "vendor")
    factory.vendor(engine, vendor_id=vendor.id)
    therapist = make_account(engine, "therapist", vendor_id=vendor.id)
    service_id, code = factory.service(engine)
    factory.therapist(engine, vendor.id, codes=[code], therapist_id=therapist.therapist_id)
    customer = make_account(engine, "customer")
    day = factory.today()
    booking = factory.booking(engine, vendor_id=vendor.id, customer_id=customer.id, day=day, at="23:00",
                              service_id=service_id, point=factory.km_east(factory.PUNE, 2))
    assignment = factory.assignment(engine, booking_id=booking, therapist_id=therapist.therapist_id, day=day,
                                    at="23:00", point=factory.km_east(factory.PUNE, 2))
    return {"vendor": vendor, "therapist": therapist, "customer": customer, "booking": booking,
            "assignment": assignment}


def step(app: Any, account: Account, assignment: uuid.UUID, status: str) -> Any:
    return client_for(app, account).post(f"/api/v1/assignments/{assignment}/status", json={"status": status})


def test_the_whole_life_of_an_assignment_moves_the_booking_and_tells_the_customer(
    app: Any, engine: Engine, job: dict[str, Any],
) -> None:
    therapist, assignment, booking = job["therapist"], job["assignment"], job["booking"]
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=booking) == "assigned"
    assert step(app, therapist, assignment, "acknowledged").status_code == 200
    skipped = step(app, therapist, assignment, "reached")
    assert skipped.status_code == 409 and "assignment is acknowledged" in skipped.json["detail"]

    assert step(app, therapist, assignment, "in_transit").json["departed_at"] is not None
    departed = scalar(engine, "SELECT departed_at FROM therapist_assignments WHERE id = :a", a=assignment)
    for km in (0, 1, 2):  # the phone reports the way there, a millisecond apart, in order
        factory.position(engine, therapist.therapist_id, factory.km_east(factory.PUNE, km),
                         at=departed + dt.timedelta(milliseconds=km))
    reached = step(app, therapist, assignment, "reached")
    assert reached.status_code == 200
    assert float(reached.json["distance_traveled"]) == pytest.approx(2.0, abs=0.05)

    assert step(app, therapist, assignment, "in_progress").status_code == 200
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=booking) == "in_progress"
    done = step(app, therapist, assignment, "completed").json
    assert done["status"] == "completed" and done["actual_duration"] is not None
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=booking) == "completed"
    told = scalar(engine, "SELECT array_agg(type ORDER BY created_at) FROM notifications WHERE user_id = :c",
                  c=job["customer"].id)
    assert told == ["therapist_arrived", "service_started", "service_completed"]
    final = step(app, therapist, assignment, "cancelled")
    assert final.status_code == 409 and "assignment is completed" in final.json["detail"]


def test_only_the_assigned_therapist_or_their_vendor_moves_it(app: Any, engine: Engine, job: dict[str, Any]) -> None:
    stranger_vendor = make_account(engine, "vendor")
    other_therapist = make_account(engine, "therapist", vendor_id=stranger_vendor.id)
    assert step(app, stranger_vendor, job["assignment"], "acknowledged").status_code == 404
    assert step(app, other_therapist, job["assignment"], "acknowledged").status_code == 404
    assert step(app, job["customer"], job["assignment"], "acknowledged").status_code == 403
    assert step(app, job["vendor"], job["assignment"], "acknowledged").status_code == 200


def test_a_declined_assignment_sends_the_booking_back_to_dispatch_without_that_therapist(
    app: Any, engine: Engine, job: dict[str, Any],
) -> None:
    response = client_for(app, job["therapist"]).post(f"/api/v1/assignments/{job['assignment']}/status",
                                                      json={"status": "cancelled", "notes": "flat tyre"})
    assert response.status_code == 200 and "flat tyre" in response.json["notes"]
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=job["booking"]) == "confirmed"
    params = scalar(engine, "SELECT params FROM jobs WHERE id = :j", j=response.json["redispatch_job_id"])
    assert params == {"booking_id": str(job["booking"]), "exclude_therapists": [str(job["therapist"].therapist_id)]}


def _complete(engine: Engine, assignment: uuid.UUID) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE therapist_assignments SET status = 'completed', actual_start_time = now(), "
                          "actual_end_time = now() WHERE id = :a"), {"a": assignment})


def test_the_customers_rating_updates_the_therapist_once(app: Any, engine: Engine, job: dict[str, Any]) -> None:
    rate = f"/api/v1/assignments/{job['assignment']}/rating"
    early = client_for(app, job["customer"]).post(rate, json={"rating": 4})
    assert early.status_code == 409 and "assignment is assigned" in early.json["detail"]
    _complete(engine, job["assignment"])
    assert client_for(app, make_account(engine, "customer")).post(rate, json={"rating": 1}).status_code == 404
    assert client_for(app, job["vendor"]).post(rate, json={"rating": 5}).status_code == 403

    rated = client_for(app, job["customer"]).post(rate, json={"rating": 4, "feedback": "firm and kind"})

    assert rated.status_code == 200 and rated.json["customer_rating"] == 4
    rating, reviews = _therapist_rating(engine, job["therapist"].therapist_id)
    assert (str(rating), reviews) == ("4.00", 1)
    again = client_for(app, job["customer"]).post(rate, json={"rating": 5})
    assert again.status_code == 409 and "already been rated" in again.json["detail"]


def _therapist_rating(engine: Engine, therapist_id: uuid.UUID) -> tuple[Any, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT rating, total_reviews FROM therapists WHERE id = :t"),
                                  {"t": therapist_id}).one())


def test_the_rating_is_the_mean_of_all_rated_assignments(app: Any, engine: Engine, job: dict[str, Any]) -> None:
    _complete(engine, job["assignment"])
    vendor = job["vendor"].id
    service_id = scalar(engine, "SELECT service_id FROM booking_items WHERE booking_id = :b", b=job["booking"])
    other = factory.booking(engine, vendor_id=vendor, customer_id=job["customer"].id,
                            day=factory.today() - dt.timedelta(days=1), at="10:00", service_id=service_id)
    earlier = factory.assignment(engine, booking_id=other, therapist_id=job["therapist"].therapist_id,
                                 day=factory.today() - dt.timedelta(days=1), at="10:00", status="completed")
    client = client_for(app, job["customer"])
    assert client.post(f"/api/v1/assignments/{earlier}/rating", json={"rating": 5}).status_code == 200
    assert client.post(f"/api/v1/assignments/{job['assignment']}/rating", json={"rating": 4}).status_code == 200
    rating, reviews = _therapist_rating(engine, job["therapist"].therapist_id)
    assert (str(rating), reviews) == ("4.50", 2)


def test_a_vendor_lists_assignments_with_the_therapists_last_fix_and_planned_distance_a_therapist_without(
    app: Any, engine: Engine, job: dict[str, Any],
) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE therapist_assignments SET dispatch_decision = CAST(:d AS jsonb) WHERE id = :a"),
                     {"d": '{"winner": {"distance_km": 2.4}}', "a": job["assignment"]})
    fix = factory.km_east(factory.PUNE, 1)
    factory.position(engine, job["therapist"].therapist_id, fix)

    (listed,) = client_for(app, job["vendor"]).get("/api/v1/assignments").json
    assert listed["id"] == str(job["assignment"]) and listed["planned_km"] == 2.4
    assert (listed["therapist_latitude"], listed["therapist_longitude"]) == pytest.approx(fix)
    (own,) = client_for(app, job["therapist"]).get("/api/v1/assignments").json
    assert own["id"] == str(job["assignment"])
    assert not {"therapist_latitude", "therapist_longitude", "planned_km"} & set(own)


def test_unassigned_lists_the_vendors_dispatchable_bookings_without_a_live_assignment(
    app: Any, engine: Engine, job: dict[str, Any],
) -> None:
    service_id = scalar(engine, "SELECT service_id FROM booking_items WHERE booking_id = :b", b=job["booking"])
    day = factory.today()
    waiting = [factory.booking(engine, vendor_id=job["vendor"].id, customer_id=job["customer"].id, day=day, at=at,
                               service_id=service_id) for at in ("22:30", "22:00")]
    factory.booking(engine, vendor_id=job["vendor"].id, customer_id=job["customer"].id, day=day, at="21:00",
                    service_id=service_id, status="pending")  # not confirmed yet: not dispatchable

    listed = client_for(app, job["vendor"]).get(f"/api/v1/dispatch/unassigned?date={day.isoformat()}")
    assert listed.status_code == 200
    assert [b["id"] for b in listed.json] == [str(waiting[1]), str(waiting[0])]  # soonest first
