"""Refreshing the reporting views: recorded, never blocking readers, never overlapping."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from ombaro import reporting

PLATFORM_TODAY = "(now() AT TIME ZONE 'Asia/Kolkata')::date"


@pytest.fixture
def conn(engine: Engine, clean_jobs: None) -> Iterator[Connection]:
    """A connection whose transaction is rolled back after the test (views and rows alike)."""
    with engine.connect() as connection:
        outer = connection.begin()
        for view in reporting.VIEWS:  # as if never refreshed (an earlier test may have committed one)
            connection.execute(text(f"REFRESH MATERIALIZED VIEW {view} WITH NO DATA"))
        yield connection
        outer.rollback()


def add_bookings(conn: Connection, rows: list[tuple[str, str, str, int]]) -> None:
    """rows: (status, payment_status, total_amount, days_ago) for one vendor and customer."""
    vendor, customer = uuid.uuid4(), uuid.uuid4()
    for user in (vendor, customer):
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :email, '!')"),
                     {"id": user, "email": f"{user}@example.test"})
    conn.execute(text(
        "INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, contact_email) "
        "VALUES (:id, 'Lotus Spa', '{\"city\": \"Pune\", \"latitude\": 18.52, \"longitude\": 73.85}', 'Asha', "
        "'+919800000000', 'spa@example.test')"), {"id": vendor})
    for n, (status, payment_status, total, days_ago) in enumerate(rows):
        conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time, status, payment_status, total_amount) VALUES (:number, :customer, :vendor, "
            "'home_service', '{\"city\": \"Pune\", \"address\": \"MG Road\"}', "
            f"{PLATFORM_TODAY} - :days, '10:00', "
            ":status, :payment, :total)"),
            {"number": f"OBO-20261126-{n:04d}-{vendor.hex[:4]}", "customer": customer, "vendor": vendor,
             "days": days_ago, "status": status, "payment": payment_status, "total": Decimal(total)})


def test_first_refresh_is_plain_then_concurrent_and_each_is_recorded(conn: Connection) -> None:
    session = Session(bind=conn)
    first = reporting.refresh_view(session, "dashboard_stats")
    second = reporting.refresh_view(session, "dashboard_stats")
    assert (first.concurrent, second.concurrent) == (False, True)
    recorded = conn.execute(text("SELECT concurrent, row_count FROM view_refreshes WHERE view_name = "
                                 "'dashboard_stats' ORDER BY started_at")).all()
    assert recorded == [(False, 1), (True, 1)]


def test_dashboard_figures_match_the_bookings(conn: Connection) -> None:
    conn.execute(text("DELETE FROM therapist_assignments; DELETE FROM bookings"))  # only this test's (rolled back)
    add_bookings(conn, [("completed", "paid", "1500.50", 1), ("completed", "paid", "2000.25", 3),
                        ("confirmed", "pending", "999.00", 0), ("cancelled", "refunded", "800.00", 2),
                        ("completed", "paid", "5000.00", 45)])  # outside the 30-day window
    session = Session(bind=conn)
    assert reporting.dashboard(session)["stats"] is None  # never refreshed: no figures, no error
    reporting.refresh_views(session)
    board = reporting.dashboard(session)
    expected = conn.execute(text(
        "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'confirmed'), "
        "count(*) FILTER (WHERE status = 'cancelled'), sum(total_amount) FILTER (WHERE payment_status = 'paid') "
        f"FROM bookings WHERE booking_date BETWEEN {PLATFORM_TODAY} - 30 AND {PLATFORM_TODAY}")).one()
    stats = board["stats"]
    assert (stats["completed_bookings"], stats["confirmed_bookings"], stats["cancelled_bookings"]) == (2, 1, 1)
    assert stats["total_revenue"] == expected[3] == Decimal("3500.75")
    assert board["refreshed_at"] is not None and board["age_seconds"] is not None
    daily = conn.execute(text("SELECT sum(bookings), sum(revenue) FROM daily_booking_stats WHERE city = 'Pune'")).one()
    assert daily == (5, Decimal("8500.75"))


def test_concurrent_refresh_does_not_block_readers(engine: Engine, clean_jobs: None) -> None:
    with Session(engine) as session, session.begin():
        reporting.refresh_view(session, "dashboard_stats")  # populated: the next one is concurrent
    refreshing = engine.connect()
    tx = refreshing.begin()
    try:
        reporting.refresh_view(Session(bind=refreshing), "dashboard_stats")  # holds its locks until commit
        with engine.connect() as reader:
            reader.execute(text("SET LOCAL statement_timeout = '2s'"))
            assert reader.execute(text("SELECT count(*) FROM dashboard_stats")).scalar_one() == 1
    finally:
        tx.rollback()
        refreshing.close()


def test_two_refreshes_of_one_view_never_overlap(engine: Engine, clean_jobs: None) -> None:
    def refresh() -> None:
        with Session(engine) as session, session.begin():
            reporting.refresh_view(session, "daily_booking_stats")
            session.execute(text("SELECT pg_sleep(0.3)"))  # hold the lock a while, as a large view would

    threads = [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with engine.connect() as conn:
        spans = conn.execute(text("SELECT started_at, finished_at FROM view_refreshes "
                                  "WHERE view_name = 'daily_booking_stats' ORDER BY started_at")).all()
    assert len(spans) == 3
    for (_, earlier_end), (later_start, _) in itertools.pairwise(spans):
        assert later_start >= earlier_end + dt.timedelta(milliseconds=250)


def test_unknown_view_is_refused(conn: Connection) -> None:
    with pytest.raises(reporting.UnknownView):
        reporting.refresh_views(Session(bind=conn), ["users; DROP TABLE jobs"])


def test_dashboard_endpoint_says_when_it_was_refreshed(client, engine: Engine, clean_jobs: None) -> None:
    with Session(engine) as session, session.begin():
        outcome = reporting.refresh_view(session, "dashboard_stats")
    with engine.connect() as conn:
        finished = conn.execute(text("SELECT finished_at FROM view_refreshes")).scalar_one()
    response = client.get("/api/v1/reports/dashboard")
    assert response.status_code == 200
    assert dt.datetime.fromisoformat(response.json["refreshed_at"]) == finished
    assert response.json["refresh_duration_ms"] == outcome.duration_ms
    assert set(response.json["stats"]) >= {"completed_bookings", "total_revenue", "window_start", "window_end"}


def test_the_workers_role_refreshes_through_the_owners_function(engine: Engine, clean_jobs: None) -> None:
    from ombaro.db import WORKER_ROLE, act_as

    with Session(engine) as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker"})
        assert session.execute(text("SELECT current_user")).scalar_one() == "ombaro_worker"
        outcome = reporting.refresh_view(session, "daily_booking_stats")
    assert outcome.view == "daily_booking_stats"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM view_refreshes")).scalar_one() == 1


def test_trend_sums_each_day_city_and_vendor_from_the_view(conn: Connection) -> None:
    conn.execute(text("DELETE FROM therapist_assignments; DELETE FROM bookings"))  # only this test's (rolled back)
    add_bookings(conn, [("completed", "paid", "1500.50", 1), ("cancelled", "refunded", "800.00", 1),
                        ("completed", "paid", "2000.25", 3), ("completed", "paid", "100.00", 45)])
    session = Session(bind=conn)
    today = conn.execute(text(f"SELECT {PLATFORM_TODAY}")).scalar_one()
    window = {"start": today - dt.timedelta(days=7), "end": today}
    assert reporting.booking_trend(session, **window) == {"days": [], "by_city": [], "by_vendor": []}
    reporting.refresh_views(session)
    trend = reporting.booking_trend(session, **window)
    assert [(d["day"], d["bookings"], d["completed"], d["cancelled"], d["revenue"]) for d in trend["days"]] == [
        (today - dt.timedelta(days=3), 1, 1, 0, Decimal("2000.25")),
        (today - dt.timedelta(days=1), 2, 1, 1, Decimal("1500.50"))]
    (city,) = trend["by_city"]
    assert (city["city"], city["bookings"], city["revenue"]) == ("Pune", 3, Decimal("3500.75"))
    (vendor,) = trend["by_vendor"]
    assert (vendor["business_name"], vendor["bookings"]) == ("Lotus Spa", 3)
    assert reporting.booking_trend(session, **window, city="Mumbai")["days"] == []
