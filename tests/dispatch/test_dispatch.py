"""Single and batch dispatch against the database (and Redis for live positions)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
import redis
from sqlalchemy import Engine, event, text
from sqlalchemy.engine.interfaces import CacheStats

from ombaro import locations
from ombaro.dispatch import service
from ombaro.models.dispatch import TherapistLastPosition
from tests.factories import dispatch as factory

ZONE = "Asia/Kolkata"


@pytest.fixture
def live(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def dispatch(engine: Engine, booking: uuid.UUID, **kwargs: object) -> dict:
    with factory.as_worker(engine) as session:
        return service.dispatch_booking(session, booking, zone=ZONE, **kwargs)


def row(engine: Engine, sql: str, **params: object) -> dict:
    with engine.connect() as conn:
        found = conn.execute(text(sql), params).mappings().first()
        return dict(found) if found else {}


def publish(client: redis.Redis, vendor: uuid.UUID, therapist: uuid.UUID, point: tuple[float, float]) -> None:
    assert locations.publish(client, TherapistLastPosition(
        id=therapist, vendor_id=vendor, latitude=Decimal(str(point[0])), longitude=Decimal(str(point[1])),
        recorded_at=dt.datetime.now(dt.UTC)), now=dt.datetime.now(dt.UTC))


@pytest.fixture
def shop(engine: Engine) -> dict:
    vendor = factory.vendor(engine)
    service_id, code = factory.service(engine)
    return {"vendor": vendor, "service": service_id, "code": code, "customer": factory.customer(engine),
            "day": factory.a_day_ahead(12)}


def test_the_nearest_eligible_therapist_is_assigned_with_the_decision_kept(engine: Engine, shop: dict) -> None:
    near = factory.therapist(engine, shop["vendor"], codes=[shop["code"]], with_login=True)
    far = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    factory.therapist(engine, shop["vendor"], codes=["NOPE"])
    factory.position(engine, near, factory.km_east(factory.PUNE, 1))
    factory.position(engine, far, factory.km_east(factory.PUNE, 6))
    booking = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                              at="11:00", service_id=shop["service"], minutes=90)

    result = dispatch(engine, booking)

    assert result["outcome"] == "assigned" and result["therapist_id"] == str(near)
    assignment = row(engine, "SELECT * FROM therapist_assignments WHERE booking_id = :b", b=booking)
    decision = assignment["dispatch_decision"]
    assert decision["winner"]["therapist_id"] == str(near) and decision["winner"]["origin"] == "live"
    assert decision["winner"]["distance_km"] == pytest.approx(1.0, abs=0.05)
    assert decision["pool"] == 3 and decision["excluded"]["specialisation"] == 1 and decision["eligible"] == 2
    assert decision["runners_up"][0]["therapist_id"] == str(far)
    assert assignment["estimated_duration"] == 90 and assignment["travel_buffer_minutes"] == 15
    assert assignment["busy_period"].upper - assignment["busy_period"].lower == dt.timedelta(minutes=105)
    assert row(engine, "SELECT status FROM bookings WHERE id = :b", b=booking)["status"] == "assigned"
    told = row(engine, "SELECT count(*) AS n, array_agg(DISTINCT type) AS types FROM notifications "
                       "WHERE data ->> 'booking_id' = :b", b=str(booking))
    assert told == {"n": 2, "types": ["therapist_assigned"]}  # the customer and the therapist

    again = dispatch(engine, booking)
    assert again["outcome"] == "already_assigned" and again["assignment_id"] == str(assignment["id"])


def test_when_nobody_fits_the_job_explains_and_the_booking_waits(engine: Engine, shop: dict) -> None:
    factory.therapist(engine, shop["vendor"], codes=["NOPE"])
    factory.therapist(engine, shop["vendor"], codes=[shop["code"]], status="inactive")
    booking = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                              at="11:00", service_id=shop["service"])

    result = dispatch(engine, booking)

    assert result["outcome"] == "unassigned"
    assert result["pool"] == 2 and result["excluded"]["specialisation"] == 1 and result["excluded"]["status"] == 1
    stored = row(engine, "SELECT status, dispatch_note FROM bookings WHERE id = :b", b=booking)
    assert stored["status"] == "confirmed" and stored["dispatch_note"]["outcome"] == "unassigned"
    assert stored["dispatch_note"]["excluded"]["specialisation"] == 1


def test_gender_preference_and_preferred_therapists_are_honoured(engine: Engine, shop: dict) -> None:
    near_man = factory.therapist(engine, shop["vendor"], codes=[shop["code"]], gender="male")
    far_woman = factory.therapist(engine, shop["vendor"], codes=[shop["code"]], gender="female")
    farther_woman = factory.therapist(engine, shop["vendor"], codes=[shop["code"]], gender="female")
    factory.position(engine, near_man, factory.PUNE)
    factory.position(engine, far_woman, factory.km_east(factory.PUNE, 5))
    factory.position(engine, farther_woman, factory.km_east(factory.PUNE, 9))
    wants_a_woman = factory.customer(engine, gender="female")
    first = factory.booking(engine, vendor_id=shop["vendor"], customer_id=wants_a_woman, day=shop["day"],
                            at="10:00", service_id=shop["service"])
    assert dispatch(engine, first)["therapist_id"] == str(far_woman)

    loyal = factory.customer(engine, preferred=[farther_woman])
    second = factory.booking(engine, vendor_id=shop["vendor"], customer_id=loyal, day=shop["day"], at="16:00",
                             service_id=shop["service"])
    result = dispatch(engine, second)
    assert result["therapist_id"] == str(farther_woman) and result["decision"]["winner"]["preferred"]


def test_a_fresh_redis_position_is_used_and_the_table_stands_in_without_redis(
    engine: Engine, shop: dict, live: redis.Redis,
) -> None:
    one = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    two = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    factory.position(engine, one, factory.km_east(factory.PUNE, 2))  # table: one is nearer
    factory.position(engine, two, factory.km_east(factory.PUNE, 4))
    publish(live, shop["vendor"], two, factory.km_east(factory.PUNE, 0.5))  # Redis: two moved closer since
    first = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                            at="10:00", service_id=shop["service"])
    assert dispatch(engine, first, redis=live)["therapist_id"] == str(two)

    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens there
    second = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"],
                             day=shop["day"] + dt.timedelta(days=1), at="10:00", service_id=shop["service"])
    result = dispatch(engine, second, redis=broken)
    assert result["therapist_id"] == str(one) and result["decision"]["winner"]["origin"] == "live"


def test_without_a_fresh_fix_distance_is_from_the_vendor(engine: Engine, shop: dict) -> None:
    stale = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    factory.position(engine, stale, factory.km_east(factory.PUNE, 30), at=dt.datetime.now(dt.UTC)
                     - dt.timedelta(minutes=20))
    booking = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                              at="12:00", service_id=shop["service"], point=factory.km_east(factory.PUNE, 3))
    winner = dispatch(engine, booking)["decision"]["winner"]
    assert winner["origin"] == "vendor_address" and winner["distance_km"] == pytest.approx(3, abs=0.1)


def test_the_assignment_insert_is_compiled_once_and_reused(engine: Engine, shop: dict) -> None:
    """SQLAlchemy's PostgreSQL insert() has no cache key: compiled again on every assignment
    (issue 16: single dispatch). The fixed statement is taken from the compiled cache."""
    seen: list[object] = []

    def record(_conn: object, _cursor: object, statement: str, _params: object, context: object, _many: bool) -> None:
        if statement.lstrip().startswith("INSERT INTO therapist_assignments"):
            seen.append(getattr(context, "cache_hit", None))

    event.listen(Engine, "after_cursor_execute", record)
    try:
        for days in range(3):
            factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
            booking = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"],
                                      day=shop["day"] + dt.timedelta(days=days), at="10:00",
                                      service_id=shop["service"])
            assert dispatch(engine, booking)["outcome"] == "assigned"
    finally:
        event.remove(Engine, "after_cursor_execute", record)
    assert len(seen) == 3 and seen[1:] == [CacheStats.CACHE_HIT] * 2


# --- no double booking, ever -----------------------------------------------------------------------

def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_the_database_refuses_a_second_overlapping_assignment_from_a_concurrent_transaction(
    engine: Engine, db_url: str, shop: dict,
) -> None:
    therapist = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    first = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                            at="10:00", service_id=shop["service"])
    second = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                             at="10:30", service_id=shop["service"])
    insert = ("INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, service_id, "
              "assignment_date, assignment_time, location_address, estimated_duration) "
              "SELECT b.id, %s, b.vendor_id, b.customer_id, %s, b.booking_date, b.booking_time, 'x', 60 "
              "FROM bookings AS b WHERE b.id = %s")
    outcome: dict[str, object] = {}
    with psycopg.connect(_plain(db_url)) as one, psycopg.connect(_plain(db_url)) as two:
        one.execute(insert, (therapist, shop["service"], first))  # not committed yet

        def racing() -> None:
            try:
                two.execute(insert, (therapist, shop["service"], second))  # waits for `one`
                two.commit()
                outcome["second"] = "committed"
            except psycopg.errors.ExclusionViolation as exc:
                two.rollback()
                outcome["second"] = exc.diag.constraint_name

        thread = threading.Thread(target=racing)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second transaction must wait for the first"
        one.commit()
        thread.join(10)
    assert outcome["second"] == "ex_therapist_assignments_busy_period"
    assert row(engine, "SELECT count(*) AS n FROM therapist_assignments WHERE therapist_id = :t",
               t=therapist)["n"] == 1


def test_a_dispatch_refused_by_the_exclusion_constraint_moves_on_and_writes_nothing(
    engine: Engine, db_url: str, shop: dict,
) -> None:
    # A writer outside dispatch (no advisory lock) holds an overlapping assignment of the only
    # therapist, uncommitted: dispatch's re-check under its lock cannot see it, its INSERT waits on
    # the constraint and, once the writer commits, is refused: the booking stays unassigned.
    only = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    first, second = _overlapping_pair(engine, shop)
    results: dict[str, dict] = {}
    with psycopg.connect(_plain(db_url)) as writer:
        writer.execute("INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, "
                       "service_id, assignment_date, assignment_time, location_address, estimated_duration) "
                       "SELECT b.id, %s, b.vendor_id, b.customer_id, %s, b.booking_date, b.booking_time, 'x', 60 "
                       "FROM bookings AS b WHERE b.id = %s", (only, shop["service"], first))
        thread = threading.Thread(target=lambda: results.setdefault("second", dispatch(engine, second)))
        thread.start()
        waiting = 0
        for _ in range(200):
            waiting = row(engine, "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock' "
                                  "AND query LIKE 'INSERT INTO therapist_assignments%'")["n"]
            if waiting:
                break
            thread.join(0.05)
        writer.commit()
        thread.join(10)
    assert waiting == 1, "dispatch's INSERT must have waited on the writer's assignment"
    assert results["second"]["outcome"] == "unassigned" and results["second"]["taken_meanwhile"] == 1
    assert row(engine, "SELECT count(*) AS n FROM therapist_assignments WHERE therapist_id = :t",
               t=only)["n"] == 1
    assert row(engine, "SELECT count(*) AS n FROM therapist_assignments WHERE booking_id = :b", b=second)["n"] == 0


def _overlapping_pair(engine: Engine, shop: dict) -> tuple[uuid.UUID, uuid.UUID]:
    first = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                            at="10:00", service_id=shop["service"])
    second = factory.booking(engine, vendor_id=shop["vendor"], customer_id=factory.customer(engine), day=shop["day"],
                             at="10:30", service_id=shop["service"])
    return first, second


def _race(engine: Engine, first: uuid.UUID, second: uuid.UUID) -> dict[str, dict]:
    """Dispatch `first` and hold its transaction open while `second` is dispatched on another
    connection, then commit: the two decide at the same moment on the same data."""
    results: dict[str, dict] = {}
    first_decided, release = threading.Event(), threading.Event()

    def dispatch_first() -> None:
        with factory.as_worker(engine) as session:
            results["first"] = service.dispatch_booking(session, first, zone=ZONE)
            first_decided.set()
            release.wait(10)

    def dispatch_second() -> None:
        results["second"] = dispatch(engine, second)

    one = threading.Thread(target=dispatch_first)
    one.start()
    assert first_decided.wait(10)
    two = threading.Thread(target=dispatch_second)
    two.start()
    two.join(0.5)
    assert two.is_alive(), "the second dispatch must wait on the therapist the first one holds"
    release.set()
    one.join(10)
    two.join(10)
    return results


def test_two_concurrent_dispatches_never_double_book_the_other_gets_someone_else(engine: Engine, shop: dict) -> None:
    best = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    other = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    factory.position(engine, best, factory.PUNE)
    factory.position(engine, other, factory.km_east(factory.PUNE, 8))
    first, second = _overlapping_pair(engine, shop)

    results = _race(engine, first, second)

    assert results["first"]["therapist_id"] == str(best)
    assert results["second"]["outcome"] == "assigned" and results["second"]["therapist_id"] == str(other)
    assert results["second"]["decision"]["taken_meanwhile"] == 1
    assert row(engine, "SELECT count(*) AS n FROM therapist_assignments WHERE therapist_id = :t",
               t=best)["n"] == 1


def test_two_concurrent_dispatches_for_the_only_therapist_make_exactly_one_assignment(
    engine: Engine, shop: dict,
) -> None:
    only = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    first, second = _overlapping_pair(engine, shop)

    results = _race(engine, first, second)

    assert results["first"]["outcome"] == "assigned"
    assert results["second"]["outcome"] == "unassigned" and results["second"]["taken_meanwhile"] == 1
    assert row(engine, "SELECT count(*) AS n FROM therapist_assignments WHERE therapist_id = :t",
               t=only)["n"] == 1


# --- batch ------------------------------------------------------------------------------------------

def test_batch_assigns_a_vendors_day_and_reports_travel_against_greedy(engine: Engine, shop: dict) -> None:
    # Greedy gives the 10:00 booking the therapist nearest to it, who is also the only one near the
    # 10:15 booking, sending the other therapist across town; the assignment does better.
    a = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    b = factory.therapist(engine, shop["vendor"], codes=[shop["code"]])
    factory.position(engine, a, factory.km_east(factory.PUNE, 1))
    factory.position(engine, b, factory.km_east(factory.PUNE, -2))
    early = factory.booking(engine, vendor_id=shop["vendor"], customer_id=shop["customer"], day=shop["day"],
                            at="10:00", service_id=shop["service"], point=factory.km_east(factory.PUNE, 0))
    late = factory.booking(engine, vendor_id=shop["vendor"], customer_id=factory.customer(engine), day=shop["day"],
                           at="10:15", service_id=shop["service"], point=factory.km_east(factory.PUNE, 4))
    with factory.as_worker(engine) as session:
        result = service.dispatch_batch(session, day=shop["day"], vendor_id=shop["vendor"], zone=ZONE)

    assert result["bookings"] == 2 and result["assigned"] == 2 and result["plan"] == "assignment"
    assert result["total_travel_km"] < result["greedy_total_travel_km"]
    with engine.connect() as conn:
        assigned = dict(conn.execute(text(
            "SELECT booking_id, therapist_id FROM therapist_assignments WHERE booking_id IN (:e, :l)"),
            {"e": early, "l": late}).all())
    assert assigned == {early: b, late: a}
    decision = row(engine, "SELECT dispatch_decision FROM therapist_assignments WHERE booking_id = :b",
                   b=early)["dispatch_decision"]
    assert decision["mode"] == "batch" and decision["plan"] == "assignment"
