"""Booking through the API: catalogue prices, promotions exactly once, numbers, hours, and the
state machine (409 naming the current state)."""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import bookings
from tests.factories import dispatch as factory
from tests.factories.accounts import Account, client_for, make_account
from tests.factories.bookings import Shop, booking_body, next_weekday, promotion

NOW = dt.datetime.now(dt.UTC)


def book(app: Any, account: Account, body: dict[str, Any]) -> Any:
    return client_for(app, account).post("/api/v1/bookings", json=body)


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_prices_come_from_the_catalogue_and_the_booking_goes_to_dispatch(
    app: Any, engine: Engine, shop: Shop, customer: Account,
) -> None:
    days = {factory.today()}  # the platform's date before and after booking: midnight may fall between
    response = book(app, customer, booking_body(shop))
    days.add(factory.today())
    assert response.status_code == 201, response.json
    booking = response.json
    # 1500 per hour for 90 minutes = 2250.00, plus a 300.00 add-on; GST 18% on 2550.00 = 459.00
    assert (booking["subtotal_amount"], booking["discount_amount"], booking["tax_amount"],
            booking["total_amount"]) == ("2550.00", "0.00", "459.00", "3009.00")
    assert booking["items"][0]["price"] == "2250.00" and booking["items"][0]["subtotal"] == "2550.00"
    assert booking["status"] == "confirmed" and booking["customer_id"] == str(customer.id)
    assert any(re.fullmatch(rf"OBO-{day:%Y%m%d}-\d{{4,}}", booking["booking_number"]) for day in days)
    job = scalar(engine, "SELECT params ->> 'booking_id' FROM jobs WHERE id = :j AND kind = 'dispatch.booking'",
                 j=booking["dispatch_job_id"])
    assert job == booking["id"]


def test_a_price_sent_by_the_client_is_refused(app: Any, shop: Shop, customer: Account) -> None:
    body = booking_body(shop)
    body["items"][0]["price"] = "1.00"
    response = book(app, customer, body)
    assert response.status_code == 422
    assert "price" in response.json["errors"]["items"]["0"]


@pytest.mark.parametrize(("change", "field"), [
    ({"booking_date": next_weekday(6).isoformat()}, "booking_date"),  # Sunday: closed
    ({"booking_time": "20:00"}, "booking_time"),  # 105 minutes would end after 21:00
    ({"booking_time": "08:30"}, "booking_time"),  # before opening
    ({"booking_date": (factory.today() - dt.timedelta(days=1)).isoformat()}, "booking_time"),  # the past (IST)
    ({"service_location": {"address": "somewhere"}}, "service_location.latitude"),
])
def test_times_outside_the_vendors_hours_are_refused(app: Any, shop: Shop, customer: Account,
                                                     change: dict[str, Any], field: str) -> None:
    response = book(app, customer, booking_body(shop, **change))
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_a_booking_ending_exactly_at_closing_time_is_accepted(app: Any, shop: Shop, customer: Account) -> None:
    assert book(app, customer, booking_body(shop, booking_time="19:15")).status_code == 201  # 19:15 + 105 = 21:00


def test_booking_numbers_are_unique_and_consecutive_under_concurrency(engine: Engine, shop: Shop) -> None:
    customers = [factory.customer(engine) for _ in range(8)]
    numbers: list[str] = []
    gate = threading.Barrier(len(customers))

    def create(customer_id: uuid.UUID) -> None:
        request = bookings.BookingRequest(
            vendor_id=shop.vendor.id, booking_type="spa_visit", booking_date=next_weekday(3), booking_time=dt.time(12),
            items=(bookings.ItemRequest(shop.service_id, 60),))
        gate.wait(5)
        with Session(engine) as session, session.begin():
            created = bookings.create_booking(session, customer_id, request, zone="Asia/Kolkata",
                                              now=dt.datetime.now(dt.UTC))
            numbers.append(created.booking.booking_number)

    threads = [threading.Thread(target=create, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(numbers) == len(set(numbers)) == len(customers)
    suffixes = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert suffixes == list(range(suffixes[0], suffixes[0] + len(customers)))


# --- promotions ---------------------------------------------------------------------------------------

def test_a_percentage_promotion_is_capped_and_recorded_once(app: Any, engine: Engine, shop: Shop,
                                                             customer: Account, marketer: Account) -> None:
    code = promotion(engine, marketer, discount_value=Decimal("20"), max_discount_amount=Decimal("400"))
    response = book(app, customer, booking_body(shop, promotion_code=code.lower()))
    assert response.status_code == 201, response.json
    # 20% of 2550.00 = 510.00, capped at 400.00; GST on 2150.00 = 387.00
    assert (response.json["discount_amount"], response.json["tax_amount"], response.json["total_amount"]) == (
        "400.00", "387.00", "2537.00")
    assert scalar(engine, "SELECT count(*) FROM promotion_usage WHERE booking_id = :b", b=response.json["id"]) == 1
    again = book(app, customer, booking_body(shop, promotion_code=code))
    assert again.status_code == 422 and "already used" in again.json["errors"]["promotion_code"][0]


@pytest.mark.parametrize("terms", [
    {"min_booking_amount": Decimal("5000")},
    {"valid_from": NOW + dt.timedelta(days=1)},
    {"valid_to": NOW - dt.timedelta(hours=1)},
    {"applicable_vendors": [uuid.uuid4()]},
    {"applicable_services": [uuid.uuid4()]},
    {"status": "inactive"},
])
def test_a_promotion_whose_conditions_are_not_met_is_refused(app: Any, engine: Engine, shop: Shop,
                                                             customer: Account, marketer: Account,
                                                             terms: dict[str, Any]) -> None:
    status = terms.pop("status", None)
    code = promotion(engine, marketer, **terms)
    if status:
        with engine.begin() as conn:
            conn.execute(text("UPDATE promotions SET status = :s WHERE code = :c"), {"s": status, "c": code})
    response = book(app, customer, booking_body(shop, promotion_code=code))
    assert response.status_code == 422
    assert "promotion_code" in response.json["errors"]


def test_a_promotions_total_limit_holds_under_concurrent_bookings(engine: Engine, shop: Shop,
                                                                  marketer: Account) -> None:
    code = promotion(engine, marketer, discount_value=Decimal("100"), type="fixed_amount", total_usage_limit=3)
    customers = [factory.customer(engine) for _ in range(6)]
    outcomes: list[str] = []
    gate = threading.Barrier(len(customers))

    def create(customer_id: uuid.UUID) -> None:
        request = bookings.BookingRequest(
            vendor_id=shop.vendor.id, booking_type="spa_visit", booking_date=next_weekday(4),
            booking_time=dt.time(15), items=(bookings.ItemRequest(shop.service_id, 60),), promotion_code=code)
        gate.wait(5)
        try:
            with Session(engine) as session, session.begin():
                bookings.create_booking(session, customer_id, request, zone="Asia/Kolkata",
                                        now=dt.datetime.now(dt.UTC))
            outcomes.append("booked")
        except bookings.BookingRejected as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=create, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert outcomes.count("booked") == 3
    assert scalar(engine, "SELECT count(*) FROM promotion_usage AS u JOIN promotions AS p ON p.id = u.promotion_id "
                          "WHERE p.code = :c", c=code) == 3
    assert scalar(engine, "SELECT current_usage_count FROM promotions WHERE code = :c", c=code) == 3


# --- the state machine ----------------------------------------------------------------------------------

def test_cancelling_twice_is_a_409_naming_the_state_and_others_cannot(app: Any, shop: Shop, customer: Account,
                                                                      engine: Engine) -> None:
    booking = book(app, customer, booking_body(shop)).json
    other = make_account(engine, "customer")
    cancel = f"/api/v1/bookings/{booking['id']}/cancel"
    assert client_for(app, other).post(cancel, json={"reason": "mine now"}).status_code == 404
    done = client_for(app, customer).post(cancel, json={"reason": "change of plans"})
    assert done.status_code == 200 and done.json["status"] == "cancelled"
    assert done.json["cancellation_reason"] == "change of plans"
    again = client_for(app, customer).post(cancel, json={"reason": "again"})
    assert again.status_code == 409 and "is cancelled" in again.json["detail"]


def test_a_vendor_cancelling_releases_the_therapist_and_tells_both(app: Any, engine: Engine, shop: Shop,
                                                                   customer: Account) -> None:
    booking = book(app, customer, booking_body(shop)).json
    assignment = factory.assignment(engine, booking_id=uuid.UUID(booking["id"]),
                                    therapist_id=shop.therapist.therapist_id,
                                    day=dt.date.fromisoformat(booking["booking_date"]), at="11:00", minutes=105)
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=booking["id"]) == "assigned"

    done = client_for(app, shop.vendor).post(f"/api/v1/bookings/{booking['id']}/cancel",
                                            json={"reason": "therapist unwell"})

    assert done.status_code == 200
    assert scalar(engine, "SELECT status FROM therapist_assignments WHERE id = :a", a=assignment) == "cancelled"
    told = scalar(engine, "SELECT array_agg(type ORDER BY type) FROM notifications WHERE data ->> 'booking_id' = :b",
                  b=booking["id"])
    assert told == ["booking_cancelled", "booking_cancelled"]  # the therapist and the customer


def test_rescheduling_releases_the_therapist_and_dispatches_again(app: Any, engine: Engine, shop: Shop,
                                                                  customer: Account) -> None:
    booking = book(app, customer, booking_body(shop)).json
    day = dt.date.fromisoformat(booking["booking_date"])
    assignment = factory.assignment(engine, booking_id=uuid.UUID(booking["id"]),
                                    therapist_id=shop.therapist.therapist_id, day=day, at="11:00", minutes=105)
    move = f"/api/v1/bookings/{booking['id']}/reschedule"

    closed = client_for(app, customer).post(move, json={"booking_date": next_weekday(6).isoformat(),
                                                        "booking_time": "11:00"})
    assert closed.status_code == 422 and "booking_date" in closed.json["errors"]
    moved = client_for(app, customer).post(move, json={"booking_date": (day + dt.timedelta(days=1)).isoformat(),
                                                       "booking_time": "16:00"})

    assert moved.status_code == 200 and moved.json["status"] == "rescheduled"
    assert scalar(engine, "SELECT status FROM therapist_assignments WHERE id = :a", a=assignment) == "cancelled"
    assert scalar(engine, "SELECT params ->> 'booking_id' FROM jobs WHERE id = :j",
                  j=moved.json["dispatch_job_id"]) == booking["id"]


def test_a_completed_booking_cannot_be_cancelled_or_moved(app: Any, engine: Engine, shop: Shop,
                                                          customer: Account) -> None:
    booking = book(app, customer, booking_body(shop)).json
    with engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET status = 'completed' WHERE id = :b"), {"b": booking["id"]})
    client = client_for(app, customer)
    cancel = client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={"reason": "too late"})
    move = client.post(f"/api/v1/bookings/{booking['id']}/reschedule",
                       json={"booking_date": booking["booking_date"], "booking_time": "12:00"})
    assert (cancel.status_code, move.status_code) == (409, 409)
    assert "is completed" in cancel.json["detail"] and "is completed" in move.json["detail"]


def test_operations_send_a_pending_booking_to_dispatch(app: Any, engine: Engine, shop: Shop,
                                                       customer: Account) -> None:
    booking = book(app, customer, booking_body(shop)).json
    with engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET status = 'pending' WHERE id = :b"), {"b": booking["id"]})
    desk = make_account(engine, "fo_department")
    response = client_for(app, desk).post(f"/api/v1/bookings/{booking['id']}/dispatch")
    assert response.status_code == 202 and response.json["kind"] == "dispatch.booking"
    assert scalar(engine, "SELECT status FROM bookings WHERE id = :b", b=booking["id"]) == "confirmed"
    with engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET status = 'in_progress' WHERE id = :b"), {"b": booking["id"]})
    late = client_for(app, desk).post(f"/api/v1/bookings/{booking['id']}/dispatch")
    assert late.status_code == 409 and "is in_progress" in late.json["detail"]
