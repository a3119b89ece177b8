"""Migration 0004: the dispatch models match the database, the busy period is computed in the
platform zone, and the tables the request roles must not write are closed to them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ombaro.bookings import next_booking_number
from ombaro.models import Base
from tests.dispatch import factory


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
