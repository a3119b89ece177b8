"""The platform schema (migration 0001): it round-trips, creates every table of the spec, makes the
database enforce the spec's constraints, matches the models, and its materialized views refresh
concurrently once they have been refreshed plainly."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from cli import alembic_config
from ombaro.models import Base

SPEC_TABLES = {
    "public": {
        "user_profiles", "role_permissions",
        "services", "service_packages", "addon_services",
        "vendors", "vendor_staff", "therapists", "therapist_schedules", "therapist_leaves",
        "therapist_locations",
        "bookings", "booking_items", "therapist_assignments", "reviews",
        "payments", "payment_settlements",
        "employees", "attendance_records", "leave_requests", "salary_records", "performance_reviews",
        "customers", "customer_addresses", "loyalty_transactions",
        "campaigns", "promotions", "promotion_usage",
        "support_tickets", "ticket_messages", "notifications",
        "analytics_events",
    },
    "auth": {"users"},
}
ANALYTICS_PARTITIONS = {"analytics_events_2025_01", "analytics_events_default"}
MATERIALIZED_VIEWS = {"dashboard_stats", "daily_booking_stats"}
EXTENSIONS = {"cube", "earthdistance", "btree_gist"}

# The modules whose tables migration 0001 creates (others come with later revisions).
PLATFORM_MODULES = {
    f"ombaro.models.{name}"
    for name in ("identity", "catalog", "vendors", "bookings", "payments", "hr", "customers",
                 "marketing", "support", "analytics")
}


def _upgrade(url: str, revision: str = "heads") -> None:
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)


def _downgrade(url: str, revision: str = "base") -> None:
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.downgrade(cfg, revision)


@pytest.fixture(scope="module")
def schema_engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fresh_engine(make_database: Callable[[], str]) -> Iterator[Engine]:
    """A database just migrated, which no other test has touched: its views were never refreshed."""
    url = make_database()
    _upgrade(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(schema_engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction is rolled back: the shared database is left as it was found."""
    with schema_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


# --- rows to hang the constraint tests on -------------------------------------------------------

def add(conn: Connection, table: str, **values: Any) -> uuid.UUID:
    columns = Base.metadata.tables[table]
    return conn.execute(insert(columns).values(**values).returning(columns.c.id)).scalar_one()


def a_user(conn: Connection) -> uuid.UUID:
    return add(conn, "auth.users", email=f"{uuid.uuid4().hex}@example.com", encrypted_password="x")


def an_employee(conn: Connection) -> uuid.UUID:
    user_id = a_user(conn)
    return add(conn, "employees", id=user_id, employee_code=f"E-{user_id.hex[:8]}", name="Asha",
               email=f"{user_id.hex}@ombaro.example", mobile="+919800000000", department="hr_department",
               designation="Executive", joining_date=dt.date(2024, 4, 1))


def a_vendor(conn: Connection, city: str | None = "Pune") -> uuid.UUID:
    address: dict[str, Any] = {"line1": "1 MG Road", "latitude": 18.5204, "longitude": 73.8567}
    if city is not None:
        address["city"] = city
    return add(conn, "vendors", id=a_user(conn), business_name="Calm Spa", business_address=address,
               contact_person="Ravi", contact_mobile="+919811111111", contact_email="spa@example.com")


def a_therapist(conn: Connection, vendor_id: uuid.UUID) -> uuid.UUID:
    return add(conn, "therapists", vendor_id=vendor_id, name="Meera",
               email=f"{uuid.uuid4().hex}@example.com", mobile="+919822222222")


def a_booking(conn: Connection, vendor_id: uuid.UUID, **values: Any) -> uuid.UUID:
    row: dict[str, Any] = {
        "booking_number": f"OBO-{uuid.uuid4().hex[:12]}", "customer_id": a_user(conn), "vendor_id": vendor_id,
        "booking_type": "spa_visit", "service_location": {"address": "1 MG Road"},
        "booking_date": dt.date.today(), "booking_time": dt.time(10, 0),
    }
    return add(conn, "bookings", **{**row, **values})


def db_today(conn: Connection, zone: str = "Asia/Kolkata") -> dt.date:
    """Today in `zone` by the database's clock (the views' clock), not this process's."""
    return conn.execute(text("SELECT (now() AT TIME ZONE :zone)::date"), {"zone": zone}).scalar_one()


def salary(employee_id: uuid.UUID, month: int) -> dict[str, Any]:
    return {"employee_id": employee_id, "month": month, "year": 2025, "basic_salary": Decimal("30000.00"),
            "gross_salary": Decimal("35000.00"), "total_deductions": Decimal("3600.00"),
            "net_salary": Decimal("31400.00")}


# --- (a) the migration round-trips --------------------------------------------------------------

def test_upgrade_downgrade_upgrade_round_trips_on_a_fresh_database(make_database: Callable[[], str]) -> None:
    url = make_database()
    _upgrade(url)
    _downgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            left = connection.execute(text(
                "SELECT n.nspname || '.' || c.relname FROM pg_class AS c "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                "AND c.relname <> 'alembic_version' AND c.relkind IN ('r', 'p', 'm', 'v', 'S')"
            )).scalars().all()
            assert left == []
            assert connection.execute(text("SELECT to_regnamespace('auth')")).scalar_one() is None
            installed = set(connection.execute(text("SELECT extname FROM pg_extension")).scalars())
            assert not installed & EXTENSIONS
            functions = connection.execute(text(
                "SELECT count(*) FROM pg_proc WHERE proname = 'ensure_monthly_partitions'")).scalar_one()
            assert functions == 0
        _upgrade(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT to_regclass('auth.users')")).scalar_one() is not None
            assert connection.execute(text("SELECT to_regclass('daily_booking_stats')")).scalar_one()
    finally:
        engine.dispose()


# --- (b) every table of the spec exists ---------------------------------------------------------

def relations(conn: Connection, kinds: tuple[str, ...]) -> dict[str, set[str]]:
    rows = conn.execute(text(
        "SELECT n.nspname, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE c.relkind = ANY(:kinds) AND n.nspname IN ('public', 'auth')"
    ), {"kinds": list(kinds)})
    found: dict[str, set[str]] = {}
    for schema, name in rows:
        found.setdefault(schema, set()).add(name)
    return found


def test_every_table_of_the_spec_exists_after_upgrade(conn: Connection) -> None:
    tables = relations(conn, ("r", "p"))
    for schema, names in SPEC_TABLES.items():
        assert names <= tables.get(schema, set()), names - tables.get(schema, set())


def test_analytics_events_is_partitioned_with_the_spec_month_and_a_default(conn: Connection) -> None:
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = 'analytics_events'::regclass"))
    assert kind.scalar_one() == "p"
    partitions = set(conn.execute(text(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'analytics_events'::regclass"
    )).scalars())
    assert partitions == ANALYTICS_PARTITIONS


def test_both_materialized_views_exist(conn: Connection) -> None:
    assert relations(conn, ("m",)).get("public", set()) >= MATERIALIZED_VIEWS


# --- (c) the database enforces the spec's constraints -------------------------------------------

def test_user_profile_with_unknown_role_is_rejected(conn: Connection) -> None:
    with pytest.raises(IntegrityError, match="ck_user_profiles_role"):
        add(conn, "user_profiles", id=a_user(conn), name="Jack", mobile="+919833333333", role="pirate")


def test_service_pressure_level_above_five_is_rejected(conn: Connection) -> None:
    with pytest.raises(IntegrityError, match="ck_services_pressure_level"):
        add(conn, "services", code="SWD", name="Swedish", category="relaxation", pressure_level=9,
            base_price_60min=Decimal("2499.00"))


def test_therapist_schedule_day_of_week_seven_is_rejected(conn: Connection) -> None:
    therapist_id = a_therapist(conn, a_vendor(conn))
    with pytest.raises(IntegrityError, match="ck_therapist_schedules_day_of_week"):
        add(conn, "therapist_schedules", therapist_id=therapist_id, day_of_week=7,
            start_time=dt.time(9), end_time=dt.time(18))


def test_therapist_leave_ending_before_it_starts_is_rejected(conn: Connection) -> None:
    therapist_id = a_therapist(conn, a_vendor(conn))
    with pytest.raises(IntegrityError, match="ck_therapist_leaves_dates_ordered"):
        add(conn, "therapist_leaves", therapist_id=therapist_id, leave_type="sick", reason="flu",
            start_date=dt.date(2025, 3, 5), end_date=dt.date(2025, 3, 4))


def test_leave_request_ending_before_it_starts_is_rejected(conn: Connection) -> None:
    employee_id = an_employee(conn)
    with pytest.raises(IntegrityError, match="ck_leave_requests_dates_ordered"):
        add(conn, "leave_requests", employee_id=employee_id, leave_type="casual", reason="wedding",
            from_date=dt.date(2025, 3, 5), to_date=dt.date(2025, 3, 4))


def test_second_attendance_record_for_the_same_employee_and_date_is_rejected(conn: Connection) -> None:
    employee_id = an_employee(conn)
    add(conn, "attendance_records", employee_id=employee_id, date=dt.date(2025, 3, 3), status="present")
    with pytest.raises(IntegrityError, match="uq_attendance_records_employee_id_date"):
        add(conn, "attendance_records", employee_id=employee_id, date=dt.date(2025, 3, 3), status="late")


def test_salary_record_for_month_thirteen_is_rejected(conn: Connection) -> None:
    employee_id = an_employee(conn)
    with pytest.raises(IntegrityError, match="ck_salary_records_month"):
        add(conn, "salary_records", **salary(employee_id, 13))


def test_second_salary_record_for_the_same_employee_and_month_is_rejected(conn: Connection) -> None:
    employee_id = an_employee(conn)
    add(conn, "salary_records", **salary(employee_id, 3))
    with pytest.raises(IntegrityError, match="uq_salary_records_employee_id_month_year"):
        add(conn, "salary_records", **salary(employee_id, 3))


def test_second_settlement_for_the_same_vendor_and_period_is_rejected(conn: Connection) -> None:
    vendor_id = a_vendor(conn)
    period = {"vendor_id": vendor_id, "settlement_period_start": dt.date(2025, 3, 1),
              "settlement_period_end": dt.date(2025, 3, 15), "total_bookings": 4,
              "gross_amount": Decimal("10000.00"), "commission_amount": Decimal("1500.00"),
              "net_settlement_amount": Decimal("8500.00")}
    add(conn, "payment_settlements", **period)
    with pytest.raises(IntegrityError, match="uq_payment_settlements_vendor_period"):
        add(conn, "payment_settlements", **period)


def test_second_module_wide_grant_for_a_role_is_rejected(conn: Connection) -> None:
    # A module no default grant uses, so the seeded matrix does not take the key first.
    grant = {"role_id": "hr_department", "module_id": "training", "permissions": ["read"]}
    add(conn, "role_permissions", **grant)
    # sub_module_id is NULL in both: NULLS NOT DISTINCT makes them the same key.
    with pytest.raises(IntegrityError, match="uq_role_permissions"):
        add(conn, "role_permissions", **grant)


def test_booking_with_a_negative_total_is_rejected(conn: Connection) -> None:
    vendor_id = a_vendor(conn)
    with pytest.raises(IntegrityError, match="ck_bookings_total_amount_not_negative"):
        a_booking(conn, vendor_id, total_amount=Decimal("-1.00"))


def test_booking_with_a_null_status_is_rejected(conn: Connection) -> None:
    vendor_id = a_vendor(conn)
    with pytest.raises(IntegrityError, match="status"):
        a_booking(conn, vendor_id, status=None)


def test_payment_by_cheque_is_rejected(conn: Connection) -> None:
    vendor_id = a_vendor(conn)
    booking_id = a_booking(conn, vendor_id)
    customer_id = conn.execute(text("SELECT customer_id FROM bookings WHERE id = :id"),
                               {"id": booking_id}).scalar_one()
    with pytest.raises(IntegrityError, match="ck_payments_payment_method"):
        add(conn, "payments", transaction_id="T-1", booking_id=booking_id, customer_id=customer_id,
            vendor_id=vendor_id, amount=Decimal("100.00"), total_amount=Decimal("100.00"),
            payment_method="cheque")


def test_therapist_location_with_battery_above_100_is_rejected(conn: Connection) -> None:
    therapist_id = a_therapist(conn, a_vendor(conn))
    with pytest.raises(IntegrityError, match="ck_therapist_locations_battery_level"):
        add(conn, "therapist_locations", therapist_id=therapist_id, latitude=Decimal("18.52040000"),
            longitude=Decimal("73.85670000"), battery_level=101)


def test_user_with_bookings_cannot_be_deleted(conn: Connection) -> None:
    booking_id = a_booking(conn, a_vendor(conn))
    customer_id = conn.execute(text("SELECT customer_id FROM bookings WHERE id = :id"),
                               {"id": booking_id}).scalar_one()
    with pytest.raises(IntegrityError, match="fk_bookings_customer_id_users"):
        conn.execute(text("DELETE FROM auth.users WHERE id = :id"), {"id": customer_id})


# --- what the database computes -----------------------------------------------------------------

def test_leave_total_days_counts_both_ends(conn: Connection) -> None:
    employee_id = an_employee(conn)
    leave_id = add(conn, "leave_requests", employee_id=employee_id, leave_type="sick", reason="flu",
                   from_date=dt.date(2025, 3, 3), to_date=dt.date(2025, 3, 5))
    total = conn.execute(text("SELECT total_days FROM leave_requests WHERE id = :id"), {"id": leave_id})
    assert total.scalar_one() == 3


def test_service_without_description_is_found_by_full_text_search(conn: Connection) -> None:
    # The spec's index expression is NULL when description or techniques is NULL.
    add(conn, "services", code="DPT", name="Deep tissue massage", category="therapeutic",
        techniques="slow strokes", base_price_60min=Decimal("2999.00"))
    found = conn.execute(text(
        "SELECT code FROM services WHERE search_vector @@ plainto_tsquery('english', 'massage strokes')"
    )).scalars().all()
    assert found == ["DPT"]


def test_nearby_vendor_search_can_use_the_location_index(conn: Connection) -> None:
    a_vendor(conn)
    conn.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(conn.execute(text(
        "EXPLAIN SELECT id FROM vendors WHERE earth_box(ll_to_earth(18.52, 73.85), 5000) @> "
        "ll_to_earth((business_address ->> 'latitude')::float8, (business_address ->> 'longitude')::float8)"
    )).scalars())
    assert "idx_vendors_location" in plan


def test_event_goes_to_its_month_partition_or_else_the_default(conn: Connection) -> None:
    for moment in ("2025-01-31 23:59:59+00", "2025-02-01 00:00:00+00"):
        conn.execute(text("INSERT INTO analytics_events (event_name, timestamp) VALUES ('page_view', :t)"),
                     {"t": moment})
    rows = conn.execute(text(
        "SELECT tableoid::regclass::text, timestamp FROM analytics_events ORDER BY timestamp")).all()
    assert [partition for partition, _ in rows] == ["analytics_events_2025_01", "analytics_events_default"]


def test_ensure_monthly_partitions_moves_stray_rows_out_of_the_default_and_is_idempotent(
    conn: Connection,
) -> None:
    conn.execute(text("INSERT INTO analytics_events (event_name, timestamp) VALUES ('search', :t)"),
                 {"t": "2025-03-10 12:00:00+00"})
    created = conn.execute(text(
        "SELECT ensure_monthly_partitions('analytics_events', DATE '2025-01-01', 4)")).scalar_one()
    assert created == 3  # February, March and April; January exists
    where = conn.execute(text("SELECT tableoid::regclass::text FROM analytics_events WHERE event_name = 'search'"))
    assert where.scalar_one() == "analytics_events_2025_03"
    again = conn.execute(text(
        "SELECT ensure_monthly_partitions('analytics_events', DATE '2025-02-15', 3)")).scalar_one()
    assert again == 0


# --- (d) the models say what the migration does -------------------------------------------------

def platform_tables() -> set[str]:
    return {
        mapper.local_table.name for mapper in Base.registry.mappers
        if mapper.class_.__module__ in PLATFORM_MODULES
    }


def test_models_match_the_migrated_database(schema_engine: Engine) -> None:
    ours = platform_tables()
    assert ours >= SPEC_TABLES["public"] | SPEC_TABLES["auth"]

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        # Partitions and tables of later revisions are not ours to compare; views are never reflected.
        return table is not None and table.name in ours

    with schema_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_schemas": True, "include_object": include_object,
            "compare_type": True, "compare_server_default": True,
        })
        assert compare_metadata(context, Base.metadata) == []


# --- (e) materialized views ---------------------------------------------------------------------

def test_never_refreshed_view_refuses_a_concurrent_refresh(fresh_engine: Engine) -> None:
    for view in sorted(MATERIALIZED_VIEWS):
        with fresh_engine.connect() as connection:
            populated = connection.execute(text("SELECT relispopulated FROM pg_class WHERE oid = CAST(:v AS regclass)"),
                                           {"v": view}).scalar_one()
            assert populated is False
            with pytest.raises(DBAPIError, match="not populated"):
                connection.execute(text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))


def test_both_views_refresh_concurrently_after_a_first_plain_refresh(fresh_engine: Engine) -> None:
    with fresh_engine.connect() as connection, connection.begin() as transaction:
        for view in sorted(MATERIALIZED_VIEWS):
            connection.execute(text(f"REFRESH MATERIALIZED VIEW {view}"))
        vendor_id = a_vendor(connection)
        a_booking(connection, vendor_id, status="confirmed", payment_status="paid",
                  total_amount=Decimal("1200.50"), booking_date=db_today(connection) - dt.timedelta(days=1))
        for view in sorted(MATERIALIZED_VIEWS):
            connection.execute(text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))
        stats = connection.execute(text(
            "SELECT singleton, confirmed_bookings, total_bookings, total_revenue FROM dashboard_stats")).one()
        assert tuple(stats) == (1, 1, 1, Decimal("1200.50"))
        transaction.rollback()


def test_daily_stats_take_the_city_from_the_booking_then_the_vendor(conn: Connection) -> None:
    day = dt.date(2025, 3, 3)
    vendor_id = a_vendor(conn, city="Pune")
    a_booking(conn, vendor_id, booking_date=day, status="completed", payment_status="paid",
              total_amount=Decimal("1000.00"), service_location={"address": "x", "city": "Mumbai"})
    a_booking(conn, vendor_id, booking_date=day, status="cancelled", total_amount=Decimal("500.00"))
    a_booking(conn, a_vendor(conn, city=None), booking_date=day)
    conn.execute(text("REFRESH MATERIALIZED VIEW daily_booking_stats"))
    rows = conn.execute(text(
        "SELECT city, bookings, completed, cancelled, revenue FROM daily_booking_stats "
        "WHERE booking_date = :day ORDER BY city"), {"day": day}).all()
    assert [tuple(row) for row in rows] == [
        ("Mumbai", 1, 1, 0, Decimal("1000.00")),
        ("Pune", 1, 0, 1, Decimal("0.00")),
        ("unknown", 1, 0, 0, Decimal("0.00")),
    ]


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])  # UTC+14 and UTC-11
def test_dashboard_window_ends_on_the_platform_date(conn: Connection, zone: str) -> None:
    conn.execute(text("SELECT set_config('ombaro.timezone', :zone, true)"), {"zone": zone})
    conn.execute(text("REFRESH MATERIALIZED VIEW dashboard_stats"))
    start, end = conn.execute(text("SELECT window_start, window_end FROM dashboard_stats")).one()
    today = db_today(conn, zone)  # the transaction's now(), the one the refresh saw
    assert (start, end) == (today - dt.timedelta(days=30), today)
