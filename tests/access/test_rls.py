"""Row-level security (migration 0003), checked in the database as the request really runs:
a transaction that does `SET LOCAL ROLE ombaro_api` and sets its claims with
`set_config('request.jwt.claims', ..., true)`. The data is the demo marketplace plus a few rows the
demo does not make, committed once in a database of this module's own."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, insert, text
from sqlalchemy.exc import DBAPIError

from devtools.demo import seed_demo
from ombaro.models import Base
from tests.services import migrate

pytestmark = pytest.mark.db

API, WORKER = "ombaro_api", "ombaro_worker"
# Tables that are not tenant data: Alembic's bookkeeping (read by migrations, as the owner).
NOT_TENANT_DATA = {"public.alembic_version"}
# The tables of migrations 0001-0003, all of which the fixture fills (the demo plus a few rows).
SEEDED_TABLES = {
    "auth.users", "user_profiles", "role_permissions", "services", "service_packages", "addon_services",
    "vendors", "vendor_staff", "therapists", "therapist_schedules", "therapist_leaves", "therapist_locations",
    "bookings", "booking_items", "therapist_assignments", "reviews", "payments", "payment_settlements",
    "employees", "attendance_records", "leave_requests", "salary_records", "performance_reviews",
    "customers", "customer_addresses", "loyalty_transactions", "campaigns", "promotions", "promotion_usage",
    "support_tickets", "ticket_messages", "notifications", "analytics_events", "jobs", "schedules",
    "view_refreshes", "audit_log",
}


@dataclass(frozen=True)
class World:
    """Who acts in the tests, picked from the seeded data as the owner sees it."""

    customer: uuid.UUID
    other_customer: uuid.UUID
    vendor: uuid.UUID
    other_vendor: uuid.UUID
    therapist: uuid.UUID  # therapists.id
    therapist_user: uuid.UUID  # its login
    employee: uuid.UUID
    manager: uuid.UUID


@dataclass(frozen=True)
class Seeded:
    engine: Engine
    url: str
    world: World


def _add(conn: Connection, table: str, **values: Any) -> Any:
    columns = Base.metadata.tables[table]
    return conn.execute(insert(columns).values(**values).returning(columns.c.id)).scalar_one()


def _rows_the_demo_does_not_make(conn: Connection, world: World) -> None:
    _add(conn, "role_permissions", role_id="customer", module_id="rls_fixture", permissions=["read"])
    for vendor in (world.vendor, world.other_vendor):
        _add(conn, "payment_settlements", vendor_id=vendor, settlement_period_start=dt.date(2026, 10, 1),
             settlement_period_end=dt.date(2026, 10, 31), total_bookings=3, gross_amount=Decimal("9000.00"),
             commission_amount=Decimal("1350.00"), net_settlement_amount=Decimal("7650.00"))
    _add(conn, "salary_records", employee_id=world.employee, month=10, year=2026,
         basic_salary=Decimal("30000.00"), gross_salary=Decimal("35000.00"),
         total_deductions=Decimal("3600.00"), net_salary=Decimal("31400.00"))
    _add(conn, "performance_reviews", employee_id=world.employee, reviewer_id=world.manager,
         review_period_start=dt.date(2026, 4, 1), review_period_end=dt.date(2026, 9, 30),
         review_date=dt.date(2026, 10, 15))
    _add(conn, "vendor_staff", vendor_id=world.vendor, name="Front desk", role="receptionist",
         mobile="+919800000002")
    _add(conn, "therapist_leaves", therapist_id=world.therapist, leave_type="sick", start_date=dt.date(2026, 12, 1),
         end_date=dt.date(2026, 12, 2), reason="fever")
    job = _add(conn, "jobs", kind="reports.refresh", requested_by=world.customer)
    now = dt.datetime.now(dt.UTC)
    _add(conn, "view_refreshes", view_name="dashboard_stats", job_id=job, concurrent=False, started_at=now,
         finished_at=now, duration_ms=5, row_count=1)
    conn.execute(text("INSERT INTO audit_log (actor_id, actor_role, method, path, status) "
                      "VALUES (:actor, 'hr_department', 'POST', '/api/v1/users', 201)"), {"actor": world.manager})


def _pick_world(conn: Connection) -> World:
    customers = conn.execute(text(
        "SELECT customer_id FROM bookings GROUP BY customer_id HAVING count(*) >= 2 ORDER BY customer_id LIMIT 2"
    )).scalars().all()
    vendors = conn.execute(text(
        "SELECT vendor_id FROM therapists GROUP BY vendor_id HAVING count(*) >= 1 ORDER BY vendor_id LIMIT 2"
    )).scalars().all()
    therapist, therapist_user = conn.execute(text(
        "SELECT t.id, t.user_id FROM therapists AS t JOIN therapist_assignments AS a ON a.therapist_id = t.id "
        "WHERE t.user_id IS NOT NULL GROUP BY t.id, t.user_id ORDER BY count(*) DESC, t.id LIMIT 1"
    )).one()
    employee, manager = conn.execute(text(
        "SELECT id, reporting_manager FROM employees WHERE reporting_manager IS NOT NULL ORDER BY id LIMIT 1"
    )).one()
    return World(customers[0], customers[1], vendors[0], vendors[1], therapist, therapist_user, employee, manager)


@pytest.fixture(scope="session")
def seeded(make_database: Callable[[], str]) -> Iterator[Seeded]:
    """A migrated database of its own with the demo data set and the rows above, committed."""
    url = make_database()
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        seed_demo(conn, scale=0.02)
        world = _pick_world(conn)
        _rows_the_demo_does_not_make(conn, world)
    yield Seeded(engine, url, world)
    engine.dispose()


@pytest.fixture(scope="session")
def world(seeded: Seeded) -> World:
    return seeded.world


@contextmanager
def acting(engine: Engine, claims: dict[str, Any] | None, role: str = API) -> Iterator[Connection]:
    """A request's transaction: the request role and its claims, both transaction-local; rolled back."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            conn.execute(text("SELECT set_config('request.jwt.claims', :claims, true)"),
                         {"claims": json.dumps(claims, default=str) if claims else ""})
            yield conn
        finally:
            transaction.rollback()


def claims(user: uuid.UUID | None, role: str) -> dict[str, Any]:
    return {"sub": str(user or uuid.uuid4()), "role": role}


def ids(conn: Connection, sql: str, **params: Any) -> set[uuid.UUID]:
    return set(conn.execute(text(sql), params).scalars())


def tenant_tables(conn: Connection) -> list[str]:
    """Every table a request could name: public's tables (partitions are reached through their
    parent) and auth.users."""
    names = conn.execute(text(
        "SELECT c.oid::regclass::text FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND (n.nspname = 'public' OR (n.nspname = 'auth' AND c.relname = 'users')) ORDER BY 1"
    )).scalars()
    return [name for name in names if f"public.{name}" not in NOT_TENANT_DATA]


# --- the roles and the tables ---------------------------------------------------------------------

def test_request_roles_own_nothing_and_cannot_bypass_row_security(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        roles = conn.execute(text(
            "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname IN (:api, :worker)"
        ), {"api": API, "worker": WORKER}).all()
        assert {(name, su, bypass, login) for name, su, bypass, login in roles} == {
            (API, False, False, False), (WORKER, False, False, False)}
        owned = conn.execute(text(
            "SELECT c.oid::regclass::text FROM pg_class AS c WHERE pg_get_userbyid(c.relowner) IN (:api, :worker) "
            "UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc AS p "
            "WHERE pg_get_userbyid(p.proowner) IN (:api, :worker)"
        ), {"api": API, "worker": WORKER}).scalars().all()
        assert owned == []


def test_every_table_has_row_security_enabled_and_forced(seeded: Seeded) -> None:
    """Fails when a migration adds a table (or a partition) without `ENABLE` and `FORCE ROW LEVEL
    SECURITY`: a table without them is readable by every request in full."""
    with seeded.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND (n.nspname = 'public' OR (n.nspname = 'auth' AND c.relname = 'users'))"
        )).all()
    unprotected = sorted(name for name, enabled, forced in rows
                         if name not in NOT_TENANT_DATA and not (enabled and forced))
    assert len(rows) > 30
    assert unprotected == []


def test_tables_outside_row_security_are_closed_to_the_request_roles(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        granted = conn.execute(text(
            "SELECT table_schema || '.' || table_name, grantee, privilege_type "
            "FROM information_schema.role_table_grants WHERE grantee IN (:api, :worker) "
            "AND (table_schema || '.' || table_name = ANY (:closed) OR table_name LIKE 'analytics_events\\_%')"
        ), {"api": API, "worker": WORKER, "closed": ["auth.refresh_tokens", *NOT_TENANT_DATA]}).all()
    assert granted == []


def test_new_monthly_partition_comes_with_row_security(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn, conn.begin() as transaction:
        created = conn.execute(text("SELECT ensure_monthly_partitions('analytics_events', DATE '2031-01-01', 2)"))
        assert created.scalar_one() == 2
        flags = conn.execute(text(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE relname IN ('analytics_events_2031_01', 'analytics_events_2031_02')")).scalars().all()
        assert flags == [True, True]
        transaction.rollback()


def test_no_policy_reads_its_own_table(seeded: Seeded) -> None:
    """A policy that queries its own table recurses (the spec's "Admins can view all profiles")."""
    with seeded.engine.connect() as conn:
        policies = conn.execute(text(
            "SELECT tablename, policyname, coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies "
            "WHERE schemaname IN ('public', 'auth')")).all()
    assert len(policies) > 100
    # A subquery names its table after FROM or JOIN; `booking_items.booking_id` in a correlated
    # subquery is a column of the row being checked, not a read of the table.
    recursive = [(table, name) for table, name, expression in policies
                 if re.search(rf"\b(FROM|JOIN)\s+(\w+\.)?{re.escape(table)}\b", expression, re.IGNORECASE)]
    assert recursive == []


def test_every_policy_reads_the_claims_once_per_query(seeded: Seeded) -> None:
    """auth.* called bare would run per row; wrapped in (select ...) it is an initplan."""
    with seeded.engine.connect() as conn:
        expressions = conn.execute(text(
            "SELECT tablename || '.' || policyname, coalesce(qual, '') || ' ' || coalesce(with_check, '') "
            "FROM pg_policies WHERE schemaname IN ('public', 'auth')")).all()
    bare = [name for name, expression in expressions
            if re.search(r"(?<!SELECT )auth\.(uid|role|vendor_id|therapist_id|jwt)\(\)", expression)]
    assert bare == []


def test_access_models_match_the_migrated_database(seeded: Seeded) -> None:
    ours = {"refresh_tokens", "audit_log", "bookings", "jobs"}  # 0003 indexes the last two

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ours

    with seeded.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True, "include_object": include_object,
            "compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


# --- anonymous, transaction-local claims, workers -------------------------------------------------

def test_request_without_claims_sees_no_row_of_any_table(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        tables = tenant_tables(conn)
        filled = {t for t in tables if conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()}
    # Every table of migrations 0001-0003 holds rows, or a zero below would prove nothing for it.
    assert SEEDED_TABLES - filled == set()
    for claims_value in (None, {}):
        with acting(seeded.engine, claims_value) as conn:
            # count(id): the request role may read only some columns of auth.users.
            seen = {t: conn.execute(text(f"SELECT count(id) FROM {t}")).scalar_one() for t in tables}
        assert {t: n for t, n in seen.items() if n} == {}


def test_partition_cannot_be_read_around_its_parent(seeded: Seeded) -> None:
    with acting(seeded.engine, claims(None, "marketing_department")) as conn:
        assert conn.execute(text("SELECT count(*) FROM analytics_events")).scalar_one() > 0
        with pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text("SELECT count(*) FROM analytics_events_default"))


def test_claims_set_in_a_transaction_are_gone_after_commit(seeded: Seeded) -> None:
    url = seeded.url.replace("postgresql+psycopg://", "postgresql://")
    sub = str(seeded.world.customer)
    with psycopg.connect(url, autocommit=True) as conn:  # each transaction() a real BEGIN / COMMIT
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {API}")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"sub": sub, "role": "customer"}),))
            inside = conn.execute("SELECT current_user, auth.uid()::text, auth.role()").fetchone()
        with conn.transaction():
            after = conn.execute(
                "SELECT current_user, auth.uid(), auth.role(), auth.jwt(), "
                "coalesce(current_setting('request.jwt.claims', true), '')").fetchone()
    assert inside == (API, sub, "customer")
    assert after is not None and after[0] != API
    assert after[1:] == (None, None, {}, "")


def test_worker_sees_every_tenants_rows(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        tables = tenant_tables(conn)
        everything = {t: conn.execute(text(f"SELECT count(id) FROM {t}")).scalar_one() for t in tables}
    with acting(seeded.engine, {"role": "worker", "sub": None, "job": str(uuid.uuid4())}, role=WORKER) as conn:
        seen = {t: conn.execute(text(f"SELECT count(id) FROM {t}")).scalar_one() for t in tables
                if t != "audit_log"}  # workers only append to the audit log
    assert seen == {t: n for t, n in everything.items() if t != "audit_log"}


def test_worker_refreshes_views_only_through_the_owner_function(seeded: Seeded) -> None:
    with acting(seeded.engine, {"role": "worker"}, role=WORKER) as conn:
        conn.execute(text("SELECT refresh_materialized_view('daily_booking_stats', false)"))
        assert conn.execute(text("SELECT count(*) FROM daily_booking_stats")).scalar_one() > 0
        conn.execute(text("SAVEPOINT other"))
        with pytest.raises(DBAPIError, match="not a materialized view"):
            conn.execute(text("SELECT refresh_materialized_view('bookings', false)"))
        conn.execute(text("ROLLBACK TO SAVEPOINT other"))
        with pytest.raises(DBAPIError, match=r"owner|permission denied"):
            conn.execute(text("REFRESH MATERIALIZED VIEW daily_booking_stats"))
    with (
        acting(seeded.engine, claims(None, "super_admin")) as conn,
        pytest.raises(DBAPIError, match="permission denied for function"),
    ):
        conn.execute(text("SELECT refresh_materialized_view('daily_booking_stats', false)"))


# --- customers, vendors, therapists ---------------------------------------------------------------

def test_customer_sees_only_their_own_bookings(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        mine = ids(conn, "SELECT id FROM bookings WHERE customer_id = :c", c=world.customer)
        theirs = ids(conn, "SELECT id FROM bookings WHERE customer_id = :c", c=world.other_customer)
    with acting(seeded.engine, claims(world.customer, "customer")) as conn:
        assert ids(conn, "SELECT id FROM bookings") == mine
        assert ids(conn, "SELECT id FROM bookings WHERE id = ANY(:ids)", ids=list(theirs)) == set()
        items = ids(conn, "SELECT booking_id FROM booking_items")
        assert items and items <= mine
        assert ids(conn, "SELECT customer_id FROM payments") <= {world.customer}
        assert ids(conn, "SELECT id FROM customers") == {world.customer}
        updated = conn.execute(text("UPDATE bookings SET special_instructions = 'x' WHERE id = ANY(:ids)"),
                               {"ids": list(theirs)})
        assert updated.rowcount == 0


def test_customer_cannot_book_in_someone_elses_name(seeded: Seeded, world: World) -> None:
    with (
        acting(seeded.engine, claims(world.customer, "customer")) as conn,
        pytest.raises(DBAPIError, match="row-level security"),
    ):
        conn.execute(text(
            "INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, service_location, "
            "booking_date, booking_time) VALUES ('OBO-RLS-1', :other, :vendor, 'spa_visit', '{}', "
            "current_date, '10:00')"), {"other": world.other_customer, "vendor": world.vendor})


def test_vendor_sees_only_its_own_therapists_and_settlements(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        therapists = ids(conn, "SELECT id FROM therapists WHERE vendor_id = :v", v=world.vendor)
        settlements = ids(conn, "SELECT id FROM payment_settlements WHERE vendor_id = :v", v=world.vendor)
        bookings = ids(conn, "SELECT id FROM bookings WHERE vendor_id = :v", v=world.vendor)
    assert therapists and settlements
    with acting(seeded.engine, claims(world.vendor, "vendor")) as conn:
        assert ids(conn, "SELECT id FROM therapists") == therapists
        assert ids(conn, "SELECT id FROM payment_settlements") == settlements
        assert ids(conn, "SELECT id FROM bookings") == bookings
        assert ids(conn, "SELECT id FROM vendors") == {world.vendor}
        assert ids(conn, "SELECT vendor_id FROM therapist_assignments") <= {world.vendor}


def test_vendor_staff_member_acts_for_their_vendor(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn, conn.begin() as transaction:
        staff_user = _add(conn, "auth.users", email=f"{uuid.uuid4().hex}@example.com", encrypted_password="!")
        _add(conn, "vendor_staff", vendor_id=world.vendor, user_id=staff_user, name="Desk", role="receptionist",
             mobile="+919800000001")
        conn.execute(text(f"SET LOCAL ROLE {API}"))
        conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                     {"c": json.dumps(claims(staff_user, "vendor"))})
        assert conn.execute(text("SELECT auth.vendor_id()")).scalar_one() == world.vendor
        assert ids(conn, "SELECT DISTINCT vendor_id FROM therapists") == {world.vendor}
        transaction.rollback()


def test_customer_sees_vendors_only_when_verified_and_active(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        listed = ids(conn, "SELECT id FROM vendors WHERE verification_status = 'verified' AND status = 'active'")
    with acting(seeded.engine, claims(world.customer, "customer")) as conn:
        assert ids(conn, "SELECT id FROM vendors") == listed


def test_therapist_sees_only_their_own_assignments(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        mine = ids(conn, "SELECT id FROM therapist_assignments WHERE therapist_id = :t", t=world.therapist)
        my_bookings = ids(conn, "SELECT booking_id FROM therapist_assignments WHERE therapist_id = :t",
                          t=world.therapist)
    assert mine
    with acting(seeded.engine, claims(world.therapist_user, "therapist")) as conn:
        assert ids(conn, "SELECT id FROM therapist_assignments") == mine
        assert ids(conn, "SELECT id FROM bookings") == my_bookings
        assert ids(conn, "SELECT id FROM therapists") == {world.therapist}


def test_customer_sees_the_location_of_a_therapist_only_while_on_their_booking(
    seeded: Seeded, world: World,
) -> None:
    with seeded.engine.connect() as conn, conn.begin() as transaction:
        assignment, customer = conn.execute(text(
            "SELECT id, customer_id FROM therapist_assignments WHERE therapist_id = :t ORDER BY id LIMIT 1"),
            {"t": world.therapist}).one()
        conn.execute(text("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
                          "VALUES (:t, 18.52, 73.85, now())"), {"t": world.therapist})
        conn.execute(text("UPDATE therapist_assignments SET status = 'completed' "
                          "WHERE therapist_id = :t AND customer_id = :c"), {"t": world.therapist, "c": customer})
        for status, visible in (("completed", False), ("in_transit", True)):
            conn.execute(text("UPDATE therapist_assignments SET status = :s WHERE id = :id"),
                         {"s": status, "id": assignment})
            conn.execute(text("SAVEPOINT request"))
            conn.execute(text(f"SET LOCAL ROLE {API}"))
            conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                         {"c": json.dumps(claims(customer, "customer"))})
            seen = conn.execute(text("SELECT count(*) FROM therapist_locations WHERE therapist_id = :t"),
                                {"t": world.therapist}).scalar_one()
            assert (seen > 0) is visible, status
            conn.execute(text("ROLLBACK TO SAVEPOINT request"))
        transaction.rollback()


# --- departments ----------------------------------------------------------------------------------

def test_customer_care_cannot_update_settlements(seeded: Seeded, world: World) -> None:
    with acting(seeded.engine, claims(world.employee, "customer_care")) as conn:
        assert conn.execute(text("SELECT count(*) FROM bookings")).scalar_one() > 0  # its own desk works
        changed = conn.execute(text("UPDATE payment_settlements SET notes = 'paid twice'"))
        assert changed.rowcount == 0
    with seeded.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payment_settlements WHERE notes IS NOT NULL")).scalar_one() == 0


def test_hr_cannot_read_settlements_but_reads_salaries(seeded: Seeded, world: World) -> None:
    with acting(seeded.engine, claims(world.manager, "hr_department")) as conn:
        assert conn.execute(text("SELECT count(*) FROM payment_settlements")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM salary_records")).scalar_one() > 0


def test_finance_manages_settlements(seeded: Seeded, world: World) -> None:
    with acting(seeded.engine, claims(world.employee, "finance_department")) as conn:
        changed = conn.execute(text("UPDATE payment_settlements SET status = 'processing'"))
        assert changed.rowcount == 2


def test_employee_sees_own_salary_and_manager_sees_reports_attendance(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        reports = ids(conn, "SELECT id FROM employees WHERE reporting_manager = :m", m=world.manager)
    with acting(seeded.engine, claims(world.employee, "employee")) as conn:
        assert ids(conn, "SELECT employee_id FROM salary_records") == {world.employee}
        assert ids(conn, "SELECT employee_id FROM attendance_records") == {world.employee}
    with acting(seeded.engine, claims(world.manager, "employee")) as conn:
        assert ids(conn, "SELECT employee_id FROM attendance_records") <= reports | {world.manager}
        assert world.employee in ids(conn, "SELECT employee_id FROM attendance_records")
        assert ids(conn, "SELECT employee_id FROM salary_records") <= {world.manager}


def test_staff_role_reads_user_profiles_without_recursion(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM user_profiles")).scalar_one()
    with acting(seeded.engine, claims(world.manager, "hr_department")) as conn:
        assert conn.execute(text("SELECT count(*) FROM user_profiles")).scalar_one() == total
    with acting(seeded.engine, claims(world.customer, "customer")) as conn:
        assert ids(conn, "SELECT id FROM user_profiles") == {world.customer}


def test_customer_never_sees_internal_ticket_notes(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn, conn.begin() as transaction:
        ticket, customer = conn.execute(text(
            "SELECT t.id, t.customer_id FROM support_tickets AS t JOIN ticket_messages AS m ON m.ticket_id = t.id "
            "WHERE t.customer_id IS NOT NULL AND m.is_internal = false ORDER BY t.id LIMIT 1")).one()
        conn.execute(text("INSERT INTO ticket_messages (ticket_id, sender_id, sender_type, message, is_internal) "
                          "VALUES (:t, :c, 'employee', 'refund looks fishy', true)"), {"t": ticket, "c": customer})
        conn.execute(text(f"SET LOCAL ROLE {API}"))
        conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                     {"c": json.dumps(claims(customer, "customer"))})
        seen = conn.execute(text("SELECT is_internal FROM ticket_messages WHERE ticket_id = :t"), {"t": ticket})
        assert set(seen.scalars()) == {False}
        transaction.rollback()


# --- columns a row policy cannot protect ----------------------------------------------------------

def test_user_cannot_change_their_own_role_or_status(seeded: Seeded, world: World) -> None:
    for column, value in (("role", "super_admin"), ("status", "active")):
        with (
            acting(seeded.engine, claims(world.customer, "customer")) as conn,
            pytest.raises(DBAPIError, match="permission denied"),
        ):
            conn.execute(text(f"UPDATE user_profiles SET {column} = :v WHERE id = :me"),
                         {"v": value, "me": world.customer})
    with acting(seeded.engine, claims(world.customer, "customer")) as conn:
        mine = conn.execute(text("UPDATE user_profiles SET name = 'Renamed' WHERE id = :me"), {"me": world.customer})
        theirs = conn.execute(text("UPDATE user_profiles SET name = 'Renamed' WHERE id = :other"),
                              {"other": world.other_customer})
        assert (mine.rowcount, theirs.rowcount) == (1, 0)


def test_request_role_cannot_read_password_hashes(seeded: Seeded, world: World) -> None:
    for role in ("customer", "super_admin"):
        with acting(seeded.engine, claims(world.customer, role)) as conn:
            assert conn.execute(text("SELECT count(email) FROM auth.users")).scalar_one() >= 1
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text("SELECT encrypted_password FROM auth.users"))


def test_vendor_cannot_verify_itself_or_lower_its_commission(seeded: Seeded, world: World) -> None:
    for assignment in ("verification_status = 'pending'", "commission_rate = commission_rate / 2",
                       "total_reviews = total_reviews + 100"):
        with (
            acting(seeded.engine, claims(world.vendor, "vendor")) as conn,
            pytest.raises(DBAPIError, match="may not change"),
        ):
            conn.execute(text(f"UPDATE vendors SET {assignment} WHERE id = :v"), {"v": world.vendor})
    with acting(seeded.engine, claims(world.vendor, "vendor")) as conn:
        renamed = conn.execute(text("UPDATE vendors SET business_name = 'Calmer Spa' WHERE id = :v"),
                               {"v": world.vendor})
        assert renamed.rowcount == 1
    with acting(seeded.engine, claims(None, "vendor_list")) as conn:
        verified = conn.execute(text("UPDATE vendors SET verification_status = 'rejected' WHERE id = :v"),
                                {"v": world.vendor})
        assert verified.rowcount == 1


def test_therapist_cannot_repoint_an_assignment_at_another_booking(seeded: Seeded, world: World) -> None:
    with seeded.engine.connect() as conn:
        other = conn.execute(text("SELECT id FROM bookings WHERE id NOT IN "
                                  "(SELECT booking_id FROM therapist_assignments WHERE therapist_id = :t) LIMIT 1"),
                             {"t": world.therapist}).scalar_one()
    with (
        acting(seeded.engine, claims(world.therapist_user, "therapist")) as conn,
        pytest.raises(DBAPIError, match="may not change"),
    ):
        conn.execute(text("UPDATE therapist_assignments SET booking_id = :b WHERE therapist_id = :t"),
                     {"b": other, "t": world.therapist})
    with acting(seeded.engine, claims(world.therapist_user, "therapist")) as conn:
        noted = conn.execute(text("UPDATE therapist_assignments SET notes = 'gate code 4411' WHERE therapist_id = :t"),
                             {"t": world.therapist})
        assert noted.rowcount > 0


def test_customer_cannot_change_what_their_booking_costs(seeded: Seeded, world: World) -> None:
    for assignment in ("discount_amount = discount_amount + 500", "payment_status = 'refunded'"):
        with (
            acting(seeded.engine, claims(world.customer, "customer")) as conn,
            pytest.raises(DBAPIError, match="may not change"),
        ):
            conn.execute(text(f"UPDATE bookings SET {assignment} WHERE customer_id = :c"), {"c": world.customer})
    with acting(seeded.engine, claims(world.customer, "customer")) as conn:
        noted = conn.execute(text("UPDATE bookings SET special_instructions = 'ring twice' WHERE customer_id = :c"),
                             {"c": world.customer})
        assert noted.rowcount > 0


def test_employee_can_withdraw_but_not_approve_their_leave(seeded: Seeded, world: World) -> None:
    with acting(seeded.engine, claims(world.employee, "employee")) as conn:
        leave = _add(conn, "leave_requests", employee_id=world.employee, leave_type="casual",
                     from_date=dt.date(2027, 1, 4), to_date=dt.date(2027, 1, 5), reason="family")
        conn.execute(text("SAVEPOINT approve"))
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(text("UPDATE leave_requests SET status = 'approved' WHERE id = :id"), {"id": leave})
        conn.execute(text("ROLLBACK TO SAVEPOINT approve"))
        withdrawn = conn.execute(text("UPDATE leave_requests SET status = 'cancelled' WHERE id = :id"), {"id": leave})
        assert withdrawn.rowcount == 1


# --- the audit log --------------------------------------------------------------------------------

def test_audit_log_rows_cannot_be_changed_even_by_the_owner(seeded: Seeded) -> None:
    for statement in ("UPDATE audit_log SET status = 200", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with seeded.engine.connect() as conn, conn.begin(), pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
    with seeded.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= 1


def test_request_appends_to_the_audit_log_only_as_itself(seeded: Seeded, world: World) -> None:
    row = ("INSERT INTO audit_log (actor_id, actor_role, method, path, status) "
           "VALUES (:actor, 'customer_care', 'POST', '/x', 201)")
    with acting(seeded.engine, claims(world.employee, "customer_care")) as conn:
        conn.execute(text(row), {"actor": world.employee})
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0  # not an auditor
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(text(row), {"actor": world.manager})
    with (
        acting(seeded.engine, claims(world.employee, "customer_care")) as conn,
        pytest.raises(DBAPIError, match="permission denied"),
    ):
        conn.execute(text("UPDATE audit_log SET status = 200"))
    with acting(seeded.engine, claims(world.employee, "it_department")) as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= 1


# --- the bookings SELECT policy of 0026 against 0003's four ---------------------------------------

def _migration(filename: str) -> Any:
    path = Path(__file__).resolve().parents[2] / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bookings_seen(conn: Connection, who: dict[str, Any] | None) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The bookings a request with these claims reads, and those it may update (an UPDATE reads its
    rows under both the SELECT and the UPDATE policies), inside the caller's transaction."""
    conn.execute(text("SAVEPOINT seen"))
    conn.execute(text(f"SET LOCAL ROLE {API}"))
    conn.execute(text("SELECT set_config('request.jwt.claims', :claims, true)"),
                 {"claims": json.dumps(who, default=str) if who else ""})
    read = ids(conn, "SELECT id FROM bookings")
    updated = ids(conn, "UPDATE bookings SET special_instructions = special_instructions RETURNING id")
    conn.execute(text("ROLLBACK TO SAVEPOINT seen"))
    conn.execute(text("RESET ROLE"))
    return read, updated


def test_bookings_select_policy_shows_what_the_four_policies_of_0003_showed(seeded: Seeded, world: World) -> None:
    """0026 merged select_own, select_own_vendor, select_staff and select_assigned_therapist into one
    policy (a cheaper order, the therapist arm through auth.assigned_booking_ids()); 0027 reads the
    claims in it and in bookings' super_admin_all without auth.uid() / auth.role(). Every kind of
    caller, and callers whose claims do not fit their account, must read and update the same rows
    under these and under 0003's policies."""
    from migrations.rls import STAFF, everywhere, policy_sql

    with seeded.engine.connect() as conn:
        vendor_staff = conn.execute(text(
            "SELECT user_id FROM vendor_staff WHERE user_id IS NOT NULL AND status = 'active' LIMIT 1")).scalar()
    callers: list[dict[str, Any] | None] = [
        None,
        claims(world.customer, "customer"), claims(world.other_customer, "customer"),
        claims(world.vendor, "vendor"), claims(world.other_vendor, "vendor"),
        claims(world.therapist_user, "therapist"),
        claims(world.customer, "vendor"), claims(world.vendor, "customer"),  # claims that do not fit
        claims(world.therapist_user, "customer"), claims(world.customer, "therapist"),
        claims(None, "customer"), claims(world.employee, "employee"),
        *[claims(world.employee, role) for role in STAFF],
        *([claims(vendor_staff, "vendor")] if vendor_staff else []),
    ]
    old = [policy for policy in _migration("0003_row_level_security.py").POLICIES["bookings"]
           if policy.command == "SELECT"]
    assert {policy.name for policy in old} == {
        "select_own", "select_own_vendor", "select_assigned_therapist", "select_staff"}
    with seeded.engine.connect() as conn, conn.begin() as transaction:
        now = [_bookings_seen(conn, who) for who in callers]
        conn.execute(text("DROP POLICY select_visible ON bookings"))
        conn.execute(text("DROP POLICY super_admin_all ON bookings"))
        for policy in [*old, everywhere()[1]]:
            conn.execute(text(policy_sql("bookings", policy)))
        before = [_bookings_seen(conn, who) for who in callers]
        transaction.rollback()
    for who, (read_now, updated_now), (read_before, updated_before) in zip(callers, now, before, strict=True):
        assert (who, read_now, updated_now) == (who, read_before, updated_before)
    everything = max(len(read) for read, _ in now)
    seen = {json.dumps(who): len(read) for who, (read, _) in zip(callers, now, strict=True)}
    # The comparison means something: owners of some rows, staff of all, strangers of none.
    assert seen[json.dumps(claims(world.customer, "customer"))] >= 2
    assert 0 < seen[json.dumps(claims(world.vendor, "vendor"))] < everything
    assert 0 < seen[json.dumps(claims(world.therapist_user, "therapist"))] < everything
    assert seen[json.dumps(claims(world.employee, "directors"))] == everything
    assert seen[json.dumps(None)] == 0
