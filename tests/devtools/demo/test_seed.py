"""The demo data set behind `ombaro seed --demo`: the same seed and day give the same rows, and the
rows hang together the way the engine assumes (bookable vendors, therapists of the booking's vendor
with the right skill and no double-booking, payments that match the booking, attendance every
working day)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, create_engine, text

from cli import alembic_config
from devtools.demo import seed_demo

pytestmark = pytest.mark.db

SEED = 20261126
TODAY = dt.date(2026, 11, 26)
SCALE = 0.05  # about 1,000 bookings: small enough to seed in a second, big enough to collide
FIRST_DAY = TODAY - dt.timedelta(days=89)
# The data set is taken at 23:00 IST on TODAY: nothing may happen after that.
TAKEN_AT = dt.datetime.combine(TODAY, dt.time(23, 0), tzinfo=ZoneInfo("Asia/Kolkata"))

# Whole rows as text, ordered by id: any difference in any column changes the digest.
CHECKSUMS = {
    name: f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {name} t"
    for name in ("auth.users", "customers", "vendors", "therapists", "therapist_schedules", "bookings",
                 "booking_items", "therapist_assignments", "payments", "attendance_records")
}
DEPARTMENT_ROLES = {"finance_department", "accounts_department", "hr_department", "marketing_department",
                    "fo_department", "customer_care", "it_department", "legal_department", "directors"}


def _migrated_engine(make_database: Callable[[], str]) -> Engine:
    url = make_database()
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    return create_engine(url)


def _checksums(conn: Connection) -> dict[str, str]:
    return {name: conn.execute(text(sql)).scalar_one() for name, sql in CHECKSUMS.items()}


@pytest.fixture(scope="module")
def seeded(make_database: Callable[[], str]) -> Iterator[tuple[Engine, dict[str, int]]]:
    """A database of its own holding the committed demo data set."""
    engine = _migrated_engine(make_database)
    with engine.begin() as conn:
        counts = seed_demo(conn, seed=SEED, today=TODAY, scale=SCALE)
    yield engine, counts
    engine.dispose()


@pytest.fixture(scope="module")
def empty(make_database: Callable[[], str]) -> Iterator[Engine]:
    """A second migrated database; tests seed it inside a transaction they roll back."""
    engine = _migrated_engine(make_database)
    yield engine
    engine.dispose()


def _rows(engine: Engine, sql: str, **params: object) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


# -- determinism and transaction ownership -------------------------------------------------------


def test_same_seed_and_day_give_identical_rows_in_a_fresh_database(seeded: tuple[Engine, dict[str, int]],
                                                                    empty: Engine) -> None:
    engine, _ = seeded
    with engine.connect() as conn:
        first = _checksums(conn)
    with empty.connect() as conn, conn.begin() as tx:
        seed_demo(conn, seed=SEED, today=TODAY, scale=SCALE)
        second = _checksums(conn)
        tx.rollback()
    assert all(first.values()), first
    assert second == first


def test_another_seed_gives_other_rows(seeded: tuple[Engine, dict[str, int]], empty: Engine) -> None:
    engine, _ = seeded
    with engine.connect() as conn:
        first = _checksums(conn)
    with empty.connect() as conn, conn.begin() as tx:
        seed_demo(conn, seed=SEED + 1, today=TODAY, scale=SCALE)
        other = _checksums(conn)
        tx.rollback()
    assert other["bookings"] != first["bookings"]
    assert other["auth.users"] != first["auth.users"]


def test_seed_leaves_the_commit_to_the_caller_and_reports_each_table(empty: Engine) -> None:
    messages: list[str] = []
    with empty.connect() as conn:
        tx = conn.begin()
        counts = seed_demo(conn, seed=SEED, today=TODAY, scale=SCALE, progress=messages.append)
        assert conn.in_transaction()
        tx.rollback()
    assert _scalar(empty, "SELECT count(*) FROM bookings") == 0
    assert _scalar(empty, "SELECT count(*) FROM auth.users") == 0
    for table, n in counts.items():
        assert f"{table}: {n} rows" in messages


def test_returned_counts_are_the_rows_in_each_table(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, counts = seeded
    for table, n in counts.items():
        assert _scalar(engine, f"SELECT count(*) FROM {table}") == n, table
    for table in ("auth.users", "user_profiles", "services", "vendors", "therapists", "therapist_schedules",
                  "customers", "customer_addresses", "bookings", "booking_items", "therapist_assignments",
                  "payments", "employees", "attendance_records", "promotions", "campaigns", "reviews",
                  "support_tickets", "notifications", "analytics_events", "compensation_structures"):
        assert counts[table] > 0, table


# -- referential sanity ----------------------------------------------------------------------------


def test_every_booking_is_with_a_verified_active_vendor(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT b.booking_number FROM bookings b JOIN vendors v ON v.id = b.vendor_id
        WHERE v.verification_status <> 'verified' OR v.status <> 'active'""") == []
    # ...while the data set does hold vendors that are not bookable, at full scale at least.
    assert _scalar(engine, "SELECT count(*) FROM vendors") >= 2


def test_assigned_therapists_work_for_the_booking_vendor_and_know_the_service(
        seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT a.id FROM therapist_assignments a
        JOIN bookings b ON b.id = a.booking_id
        JOIN therapists t ON t.id = a.therapist_id
        JOIN services s ON s.id = a.service_id
        WHERE t.vendor_id <> b.vendor_id OR a.vendor_id <> b.vendor_id OR a.customer_id <> b.customer_id
           OR a.assignment_date <> b.booking_date OR NOT (s.code = ANY (t.specialization))""") == []
    # Bookings that a therapist is working on or has done have one; the others have none.
    assert _rows(engine, """
        SELECT b.booking_number, b.status FROM bookings b
        WHERE (b.status IN ('assigned', 'in_progress', 'completed'))
              <> EXISTS (SELECT 1 FROM therapist_assignments a WHERE a.booking_id = b.id)""") == []


def test_a_therapist_is_never_booked_twice_at_once(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT a.id, b.id FROM therapist_assignments a
        JOIN therapist_assignments b
          ON a.therapist_id = b.therapist_id AND a.assignment_date = b.assignment_date AND a.id < b.id
        WHERE (a.assignment_time, a.assignment_time + make_interval(mins => a.estimated_duration))
              OVERLAPS (b.assignment_time, b.assignment_time + make_interval(mins => b.estimated_duration))""") == []


def test_assignments_fall_within_the_therapist_shift_and_outside_leave(
        seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT a.id FROM therapist_assignments a
        LEFT JOIN therapist_schedules s
          ON s.therapist_id = a.therapist_id AND s.day_of_week = extract(dow FROM a.assignment_date)
        WHERE s.id IS NULL OR NOT s.is_available
           OR a.assignment_time < s.start_time
           OR a.assignment_time + make_interval(mins => a.estimated_duration) > s.end_time
           OR EXISTS (SELECT 1 FROM therapist_leaves l WHERE l.therapist_id = a.therapist_id
                      AND l.status = 'approved' AND a.assignment_date BETWEEN l.start_date AND l.end_date)""") == []


def test_paid_completed_bookings_have_a_successful_payment_of_the_booking_total(
        seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _scalar(engine, "SELECT count(*) FROM bookings WHERE status = 'completed' AND payment_status = 'paid'") > 0
    assert _rows(engine, """
        SELECT b.booking_number FROM bookings b
        WHERE b.status = 'completed' AND b.payment_status = 'paid'
          AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = b.id AND p.status = 'success'
                          AND p.total_amount = b.total_amount AND p.customer_id = b.customer_id
                          AND p.vendor_id = b.vendor_id)""") == []
    # Refunds belong to cancelled bookings and give the whole amount back.
    assert _rows(engine, """
        SELECT p.transaction_id FROM payments p JOIN bookings b ON b.id = p.booking_id
        WHERE p.status = 'refunded' AND (b.status <> 'cancelled' OR b.payment_status <> 'refunded'
                                         OR p.refund_amount <> p.total_amount OR p.refund_date IS NULL)""") == []


def test_booking_numbers_are_unique_and_carry_the_creation_day(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    rows = _rows(engine, """
        SELECT booking_number, to_char(created_at AT TIME ZONE 'Asia/Kolkata', 'YYYYMMDD') FROM bookings""")
    numbers = [n for n, _ in rows]
    assert len(numbers) == len(set(numbers))
    pattern = re.compile(r"^OBO-(\d{8})-(\d{4})$")
    for number, created_day in rows:
        match = pattern.match(number)
        assert match, number
        assert match.group(1) == created_day, number
    # Per day the sequence runs 0001..N without gaps.
    assert _rows(engine, """
        SELECT substr(booking_number, 5, 8) FROM bookings GROUP BY 1
        HAVING max(substr(booking_number, 14)::int) <> count(*)""") == []


def test_booking_amounts_add_up_with_gst_on_the_discounted_subtotal(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT b.booking_number FROM bookings b
        WHERE b.subtotal_amount <> (SELECT sum(i.subtotal) FROM booking_items i WHERE i.booking_id = b.id)
           OR b.tax_amount <> round((b.subtotal_amount - b.discount_amount) * 0.18, 2)
           OR b.total_amount <> b.subtotal_amount - b.discount_amount + b.tax_amount""") == []
    # Item price comes from the catalogue: base price pro rata to the duration, to the paise.
    assert _rows(engine, """
        SELECT i.id FROM booking_items i JOIN services s ON s.id = i.service_id
        WHERE i.price <> round(s.base_price_60min * i.duration / 60.0, 2)
           OR NOT (i.duration = ANY (s.duration_options))""") == []


def test_bookings_span_ninety_days_to_today_plus_upcoming_ones(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    days = {d for (d,) in _rows(engine, "SELECT DISTINCT booking_date FROM bookings")}
    history = {FIRST_DAY + dt.timedelta(days=n) for n in range(90)}
    assert history <= days
    assert min(days) == FIRST_DAY
    upcoming = days - history
    assert upcoming and all(TODAY < d <= TODAY + dt.timedelta(days=2) for d in upcoming)
    assert _rows(engine, """
        SELECT DISTINCT status FROM bookings WHERE booking_date <= :today
        EXCEPT SELECT unnest(ARRAY['completed', 'cancelled'])""", today=TODAY) == []
    assert _rows(engine, """
        SELECT DISTINCT status FROM bookings WHERE booking_date > :today
        EXCEPT SELECT unnest(ARRAY['pending', 'confirmed', 'assigned', 'cancelled'])""", today=TODAY) == []
    assert _rows(engine, """
        SELECT booking_number FROM bookings WHERE status = 'cancelled'
          AND (cancellation_reason IS NULL OR cancelled_at IS NULL OR cancelled_at < created_at)""") == []


def test_bookings_start_within_the_vendor_opening_hours(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT b.booking_number FROM bookings b JOIN vendors v ON v.id = b.vendor_id
        CROSS JOIN LATERAL (SELECT v.operating_hours -> lower(trim(to_char(b.booking_date, 'day'))) AS day) h
        WHERE (h.day ->> 'closed')::boolean
           OR b.booking_time < (h.day ->> 'open')::time
           OR b.booking_time >= (h.day ->> 'close')::time""") == []


def test_therapist_schedules_end_after_they_start_with_breaks_inside(
        seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _scalar(engine, "SELECT count(*) FROM therapist_schedules") > 0
    assert _rows(engine, """
        SELECT id FROM therapist_schedules
        WHERE end_time <= start_time OR break_start < start_time OR break_end > end_time
           OR break_end <= break_start""") == []


def test_employees_have_attendance_on_every_working_day(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    missing = _rows(engine, """
        SELECT e.employee_code, d::date FROM employees e
        CROSS JOIN generate_series(CAST(:first AS date), CAST(:today AS date), interval '1 day') d
        WHERE extract(isodow FROM d) < 7 AND d >= e.joining_date
          AND d <= coalesce(e.last_working_date, CAST(:today AS date))
          AND NOT EXISTS (SELECT 1 FROM attendance_records a WHERE a.employee_id = e.id AND a.date = d::date)""",
                    first=FIRST_DAY, today=TODAY)
    assert missing == []
    assert _rows(engine, "SELECT id FROM attendance_records WHERE extract(isodow FROM date) = 7") == []
    # Days off are backed by an approved leave request.
    assert _rows(engine, """
        SELECT a.id FROM attendance_records a WHERE a.status = 'leave' AND NOT EXISTS (
            SELECT 1 FROM leave_requests l WHERE l.employee_id = a.employee_id AND l.status = 'approved'
              AND a.date BETWEEN l.from_date AND l.to_date)""") == []


def test_people_have_profiles_with_their_role_and_no_usable_password(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT u.email FROM auth.users u LEFT JOIN user_profiles p ON p.id = u.id
        WHERE p.id IS NULL OR u.encrypted_password <> '!'""") == []
    roles = dict(_rows(engine, """
        SELECT 'customer', array_agg(DISTINCT p.role) FROM customers c JOIN user_profiles p ON p.id = c.id
        UNION ALL SELECT 'vendor', array_agg(DISTINCT p.role) FROM vendors v JOIN user_profiles p ON p.id = v.id
        UNION ALL SELECT 'therapist', array_agg(DISTINCT p.role) FROM therapists t
                  JOIN user_profiles p ON p.id = t.user_id
        UNION ALL SELECT 'employee', array_agg(DISTINCT p.role) FROM employees e
                  JOIN user_profiles p ON p.id = e.id"""))
    assert roles["customer"] == ["customer"]
    assert roles["vendor"] == ["vendor"]
    assert roles["therapist"] == ["therapist"]
    assert set(roles["employee"]) <= DEPARTMENT_ROLES
    assert _rows(engine, "SELECT mobile FROM user_profiles WHERE mobile !~ '^\\+91[6-9][0-9]{9}$'") == []


def test_summaries_agree_with_the_rows_they_summarise(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    assert _rows(engine, """
        SELECT c.id FROM customers c
        WHERE c.total_bookings <> (SELECT count(*) FROM bookings b WHERE b.customer_id = c.id)
           OR c.loyalty_points <> (SELECT coalesce(sum(points), 0) FROM loyalty_transactions l
                                   WHERE l.customer_id = c.id)""") == []
    assert _rows(engine, """
        SELECT t.id FROM therapists t
        WHERE t.total_services <> (SELECT count(*) FROM therapist_assignments a
                                   WHERE a.therapist_id = t.id AND a.status = 'completed')""") == []
    assert _rows(engine, """
        SELECT v.id FROM vendors v
        WHERE v.total_reviews <> (SELECT count(*) FROM reviews r WHERE r.vendor_id = v.id AND r.status = 'approved')
        """) == []
    assert _rows(engine, """
        SELECT p.code FROM promotions p
        WHERE p.current_usage_count <> (SELECT count(*) FROM promotion_usage u WHERE u.promotion_id = p.id)""") == []


def test_nothing_happens_after_the_data_set_is_taken(seeded: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = seeded
    for table in ("auth.users", "customers", "vendors", "therapists", "bookings", "therapist_assignments",
                  "payments", "reviews", "attendance_records", "support_tickets", "notifications"):
        latest = _scalar(engine, f"SELECT max(greatest(created_at, updated_at)) FROM {table}"
                         if table != "notifications" else "SELECT max(created_at) FROM notifications")
        assert latest is not None and latest <= TAKEN_AT, table
    assert _scalar(engine, "SELECT max(timestamp) FROM analytics_events") <= TAKEN_AT
    assert _scalar(engine, "SELECT max(payment_date) FROM payments") <= TAKEN_AT
