"""Migration 0004: the dispatch models match the database, the busy period is computed in the
platform zone, and the tables the request roles must not write are closed to them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ombaro.bookings import next_booking_number
from ombaro.models import Base
from tests.factories import dispatch as factory


def test_dispatch_models_match_the_migrated_database(engine: Engine) -> None:
    ours = {"therapist_last_positions", "booking_number_counters", "therapist_locations"}

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True, "include_object": include_object,
            "compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_columns_dispatch_adds_are_declared_in_their_own_models(engine: Engine) -> None:
    """No model adds columns to another's at import time: each table's own module declares the
    columns migration 0004 added to it, and they match the database."""
    script = (  # the models with ombaro/models/dispatch.py never executed (a stand-in module instead)
        "import sys, types\n"
        "stand_in = types.ModuleType('ombaro.models.dispatch')\n"
        "stand_in.BookingNumberCounter = stand_in.TherapistLastPosition = None\n"
        "sys.modules['ombaro.models.dispatch'] = stand_in\n"
        "from ombaro.models.bookings import Booking, TherapistAssignment\n"
        "from ombaro.models.customers import Customer\n"
        "from ombaro.models.marketing import PromotionUsage\n"
        "print(sorted(Booking.__table__.c.keys()) + sorted(TherapistAssignment.__table__.c.keys())"
        " + sorted(Customer.__table__.c.keys()) + sorted(i.name for i in PromotionUsage.__table__.indexes))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for name in ("dispatch_note", "busy_period", "travel_buffer_minutes", "dispatch_decision", "departed_at",
                 "arrived_at", "preferred_therapist_gender", "uq_promotion_usage_booking"):
        assert f"'{name}'" in out
    extended = {"bookings", "therapist_assignments", "customers", "promotion_usage"}

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in extended

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True, "include_object": include_object,
            "compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_busy_period_is_the_platform_zone_window_plus_the_buffer(engine: Engine) -> None:
    vendor = factory.vendor(engine)
    service_id, code = factory.service(engine)
    therapist = factory.therapist(engine, vendor, codes=[code])
    day = dt.date(2031, 3, 4)
    booking = factory.booking(engine, vendor_id=vendor, customer_id=factory.customer(engine), day=day, at="10:00",
                              service_id=service_id)
    assignment = factory.assignment(engine, booking_id=booking, therapist_id=therapist, day=day, at="10:00",
                                    minutes=90, buffer_minutes=15)
    with engine.connect() as conn:
        period = conn.execute(text("SELECT busy_period FROM therapist_assignments WHERE id = :a"),
                              {"a": assignment}).scalar_one()
    assert period.lower == dt.datetime(2031, 3, 4, 4, 30, tzinfo=dt.UTC)  # 10:00 in Asia/Kolkata
    assert period.upper - period.lower == dt.timedelta(minutes=105)


def test_a_booking_number_inserted_elsewhere_pushes_the_counter(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bookings (booking_number, customer_id, vendor_id, booking_type, "
                          "service_location, booking_date, booking_time) SELECT 'OBO-20310101-0042', id, id, "
                          "'spa_visit', :l, '2031-01-01', '10:00' FROM vendors LIMIT 1"), {"l": json.dumps({})})
        counter = conn.execute(text("SELECT last_number FROM booking_number_counters WHERE day = '2031-01-01'"))
        assert counter.scalar_one() == 42
        with Session(bind=conn) as session:
            assert next_booking_number(session, dt.date(2031, 1, 1)) == "OBO-20310101-0043"


@pytest.mark.parametrize("statement", [
    "SELECT count(*) FROM booking_number_counters",
    "UPDATE booking_number_counters SET last_number = 0",
])
def test_the_request_role_sees_no_counter(engine: Engine, statement: str) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("SET LOCAL ROLE ombaro_api"))
        conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                     {"c": json.dumps({"sub": "00000000-0000-0000-0000-000000000001", "role": "customer"})})
        try:
            result = conn.execute(text(statement))
            assert (result.scalar_one() if statement.startswith("SELECT") else result.rowcount) == 0
        except DBAPIError:  # refusing outright is fine too
            pass
        transaction.rollback()
