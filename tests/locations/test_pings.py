"""Location pings through the API: validation, storage, the live index, and a customer following
their own therapist (and nobody else's)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ombaro import locations
from ombaro.db import API_ROLE, act_as
from tests.factories import dispatch as factory
from tests.factories.accounts import Account, client_for, make_account
from tests.helpers import traced


@pytest.fixture(scope="module")
def crew(engine: Engine) -> dict[str, Account]:
    vendor = make_account(engine, "vendor")
    factory.vendor(engine, vendor_id=vendor.id)
    return {"vendor": vendor, "therapist": make_account(engine, "therapist", vendor_id=vendor.id),
            "colleague": make_account(engine, "therapist", vendor_id=vendor.id)}


@pytest.fixture
def live(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def ping(seconds_ago: float = 5, **changes: Any) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return {"latitude": 18.5204, "longitude": 73.8567, "accuracy": 8.5, "speed": 22.0, "heading": 90.0,
            "battery": 76, "timestamp": stamp.isoformat(), **changes}


def post(app: Any, account: Account, body: dict[str, Any]) -> Any:
    return client_for(app, account).post("/api/v1/locations", json=body)


def stored(engine: Engine, therapist_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM therapist_locations WHERE therapist_id = :t"),
                            {"t": therapist_id}).scalar_one()


def test_a_batch_is_stored_and_the_latest_fix_published(app: Any, engine: Engine, crew: dict[str, Account],
                                                        live: redis.Redis) -> None:
    me = crew["therapist"]
    before = stored(engine, me.therapist_id)
    response = post(app, me, {"pings": [ping(30, longitude=73.85), ping(10, longitude=73.86), ping(20)]})

    assert response.status_code == 201, response.json
    assert response.json["accepted"] == 3 and response.json["live"] is True
    assert response.json["latest"]["longitude"] == pytest.approx(73.86)
    assert stored(engine, me.therapist_id) == before + 3
    cached = json.loads(live.get(locations.location_key(me.therapist_id)))
    assert cached["longitude"] == pytest.approx(73.86)
    assert 0 < live.ttl(locations.location_key(me.therapist_id)) <= locations.LIVE_TTL_SECONDS
    assert live.geopos(locations.geo_key(crew["vendor"].id), str(me.therapist_id))[0] is not None


# Bodies are made when the test runs (a timestamp taken at collection is minutes old by then).
@pytest.mark.parametrize(("make_body", "where"), [
    (lambda: {"pings": [ping(latitude=91)]}, ("pings", "0", "latitude")),
    (lambda: {"pings": [ping(), ping(longitude=-180.5)]}, ("pings", "1", "longitude")),
    (lambda: {"pings": [ping(battery=101)]}, ("pings", "0", "battery")),
    (lambda: {"pings": [ping(heading=360)]}, ("pings", "0", "heading")),
    (lambda: {"pings": [ping(-600)]}, ("pings", "0", "timestamp")),  # ten minutes in the future
    (lambda: {"pings": [ping(25 * 3600)]}, ("pings", "0", "timestamp")),  # older than the retention
    (lambda: {"pings": [ping(timestamp="2026-11-26T10:00:00")]}, ("pings", "0", "timestamp")),  # no offset
    (lambda: {"pings": [ping() for _ in range(locations.MAX_PINGS_PER_BATCH + 1)]}, ("pings",)),
    (lambda: {"pings": []}, ("pings",)),
    (lambda: {"pings": [ping(altitude_m=3)]}, ("pings", "0", "altitude_m")),  # unknown fields are refused
])
def test_bad_fixes_are_refused_with_field_errors_and_nothing_is_stored(
    app: Any, engine: Engine, crew: dict[str, Account], make_body: Callable[[], dict[str, Any]],
    where: tuple[str, ...],
) -> None:
    body = make_body()
    me = crew["therapist"]
    before = stored(engine, me.therapist_id)
    response = post(app, me, body)
    assert response.status_code == 422, response.json
    errors: Any = response.json["errors"]
    for key in where:
        errors = errors[key]
    assert errors
    assert stored(engine, me.therapist_id) == before


def test_a_therapist_cannot_post_for_another_and_non_therapists_cannot_post(
    app: Any, engine: Engine, crew: dict[str, Account],
) -> None:
    me, colleague = crew["therapist"], crew["colleague"]
    response = post(app, me, {"therapist_id": str(colleague.therapist_id), "pings": [ping()]})
    assert response.status_code == 422 and "therapist_id" in response.json["errors"]
    assert stored(engine, colleague.therapist_id) == 0
    assert post(app, crew["vendor"], {"pings": [ping()]}).status_code == 403
    assert post(app, make_account(engine, "customer"), {"pings": [ping()]}).status_code == 403  # no permission


def test_a_late_batch_never_replaces_a_newer_position(app: Any, engine: Engine, crew: dict[str, Account]) -> None:
    me = crew["colleague"]
    assert post(app, me, {"pings": [ping(5, longitude=73.90)]}).status_code == 201
    late = post(app, me, {"pings": [ping(60, longitude=73.70)]})
    assert late.json["latest"]["longitude"] == pytest.approx(73.90)
    with engine.connect() as conn:
        assert float(conn.execute(text("SELECT longitude FROM therapist_last_positions WHERE id = :t"),
                                  {"t": me.therapist_id}).scalar_one()) == pytest.approx(73.90)


# --- following the therapist --------------------------------------------------------------------------

@pytest.fixture
def trip(engine: Engine, crew: dict[str, Account]) -> dict[str, Any]:
    customer = make_account(engine, "customer")
    service_id, code = factory.service(engine)
    day = factory.a_day_ahead(30 + len(code) % 7)
    booking = factory.booking(engine, vendor_id=crew["vendor"].id, customer_id=customer.id, day=day,
                              at="12:00", service_id=service_id, point=factory.km_east(factory.PUNE, 5))
    assignment = factory.assignment(engine, booking_id=booking, therapist_id=crew["therapist"].therapist_id, day=day,
                                    at="12:00", point=factory.km_east(factory.PUNE, 5))
    return {"customer": customer, "booking": booking, "assignment": assignment}


def test_the_customer_follows_their_therapist_only_while_in_transit(
    app: Any, engine: Engine, crew: dict[str, Account], trip: dict[str, Any], live: redis.Redis,
) -> None:
    me = crew["therapist"]
    follow = f"/api/v1/locations/bookings/{trip['booking']}"
    waiting = client_for(app, trip["customer"]).get(follow)
    assert waiting.status_code == 409 and "assignment is assigned" in waiting.json["detail"]
    for status in ("acknowledged", "in_transit"):
        assert client_for(app, me).post(f"/api/v1/assignments/{trip['assignment']}/status",
                                        json={"status": status}).status_code == 200
    assert post(app, me, {"pings": [ping(2)]}).status_code == 201

    seen = client_for(app, trip["customer"]).get(follow)

    assert seen.status_code == 200, seen.json
    assert seen.json["source"] == "redis" and seen.json["longitude"] == pytest.approx(73.8567)
    assert seen.json["distance_km"] == pytest.approx(5, abs=0.1)
    assert seen.json["eta_minutes"] == 16  # 5 km x 1.3 at 25 km/h, rounded up
    live.delete(locations.location_key(me.therapist_id))  # Redis lost it: the table answers
    assert client_for(app, trip["customer"]).get(follow).json["source"] == "database"
    stranger = make_account(engine, "customer")
    assert client_for(app, stranger).get(follow).status_code == 404


def test_the_fast_path_loads_exactly_what_the_schema_loads() -> None:
    """PingList converts plainly valid batches itself (issue 16) and leaves everything else to the
    nested schema: for every mix of good and bad values the result or the errors are the schema's."""
    import random

    from marshmallow import Schema, ValidationError, fields, validate

    from web.api.locations import PingBatchSchema, PingSchema

    class SchemaOnly(Schema):
        therapist_id = fields.UUID()
        pings = fields.List(fields.Nested(PingSchema), required=True,
                            validate=validate.Length(min=1, max=locations.MAX_PINGS_PER_BATCH))

    now = dt.datetime.now(dt.UTC)
    values: dict[str, list[Any]] = {
        "latitude": [0, 18.5, 90, 90.0000001, -90, -91, "18.5", None, True, float("inf"), 10**30,
                     float("nan"), 89.99999999999999, 90.00000000000001, -90.00000000000001],
        "longitude": [73.8, 180, -180.0001, 180.00000000000003, -179.99999999999997],
        "heading": [0, 359.99, 360, 360.0, -0.0, "x", 359.99999999999994, -5e-324],
        "battery": [0, 100, 101, 50.0, True, "5", -1],
        "is_moving": [True, False, 0, 1, "true", None],
        "timestamp": [now.isoformat(), now.replace(tzinfo=None).isoformat(), "2026-12-06T10:00:00Z",
                      "2026-12-06T10:00:00+05:30", "2026-12-06", "garbage", 12345, None],
        "speed": [0, 300, 300.5, 22], "accuracy": [8.5, 0, 10000, 10001], "altitude": [-500, -501, 10000],
        "unknown": [1]}
    rng, fast, reference, fast_taken = random.Random(16), PingBatchSchema(), SchemaOnly(), 0
    for _ in range(3000):
        one = ping()
        for key in rng.sample(sorted(values), rng.randint(0, 3)):
            one[key] = rng.choice(values[key])
        if rng.random() < 0.05:
            del one[rng.choice(sorted(one))]
        body = {"pings": [ping(), one]}
        outcomes = []
        for schema in (fast, reference):
            try:
                outcomes.append(("loaded", schema.load(body)))
            except ValidationError as exc:
                outcomes.append(("refused", exc.messages))
        assert outcomes[0] == outcomes[1], body
        fast_taken += fast.fields["pings"]._fast(body["pings"]) is not None
    assert 300 < fast_taken < 2900  # both paths were exercised


def test_a_batch_of_pings_with_the_same_keys_is_judged_a_column_at_a_time_as_ping_by_ping() -> None:
    """PingList._fast takes a batch whose pings all have the same keys a column at a time (issue 16,
    session 5); for every mix of good and bad values in any ping it loads what the ping-by-ping path
    loads, or refuses it to the schema alike."""
    import random

    from web.api.locations import PingBatchSchema

    now = dt.datetime.now(dt.UTC)
    bad: dict[str, list[Any]] = {
        "latitude": [90, 90.0000001, -91, "18.5", None, True, float("inf"), float("nan"), 10**30, -90.00000000000001],
        "heading": [0, 360, 360.0, 359.99999999999994, -5e-324, False],
        "battery": [0, 100, 101, 50.0, True, -1], "is_moving": [True, False, 0, None],
        "timestamp": [now.replace(tzinfo=None).isoformat(), "2026-12-06T10:00:00Z", "garbage", 12345],
        "speed": [0, 300, 300.5, float("-inf")], "accuracy": [10000, 10001, float("nan")]}
    field = PingBatchSchema().fields["pings"]
    rng, by_column = random.Random(5), 0
    for _ in range(2000):
        keys = rng.sample(sorted(bad), rng.randint(0, 3))
        batch = [ping(k, is_moving=True) for k in range(rng.randint(1, 6))]
        for one in rng.sample(batch, rng.randint(1, len(batch))):
            for key in keys:
                one[key] = rng.choice(bad[key])
        if rng.random() < 0.05:
            missing = rng.choice(sorted(batch[0]))
            for one in batch:
                del one[missing]
        assert all(one.keys() == batch[0].keys() for one in batch)
        loaded = field._fast(batch)
        assert loaded == field._fast_rows(batch), batch
        by_column += loaded is not None
    assert 200 < by_column < 1800  # both outcomes were seen


def test_a_batch_commits_without_waiting_for_the_wal_flush_and_only_its_own_transaction(
        engine: Engine, crew: dict[str, Account]) -> None:
    """Pings are 24-hour telemetry: their transaction commits asynchronously (issue 16), and the
    setting is transaction-local, so the pooled connection's next transaction is durable again."""
    # A therapist of their own: the crew's last position may hold a newer fix from an earlier test.
    me = make_account(engine, "therapist", vendor_id=crew["vendor"].id)
    assert me.therapist_id is not None
    therapist = locations.TherapistRef(me.therapist_id, crew["vendor"].id)
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    with engine.connect() as conn:
        with Session(bind=conn) as session:
            latest = locations.record_pings(session, therapist, [
                {"latitude": Decimal("18.52"), "longitude": Decimal("73.87"), "timestamp": stamp}])
            assert session.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one() == "off"
            session.commit()
        assert conn.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one() == "on"
        conn.rollback()
    assert latest is not None and latest.recorded_at == stamp and latest.longitude == Decimal("73.87")
    assert latest.vendor_id == crew["vendor"].id


def test_a_row_the_database_refuses_raises_as_the_session_would(engine: Engine, crew: dict[str, Account]) -> None:
    """The batch goes through the driver's pipeline, not the session: a refusal still arrives as
    SQLAlchemy's exception class (row-level security: ProgrammingError 42501), which the API maps
    to the same problem as before (web/errors.py: 403)."""
    me, colleague = crew["therapist"], crew["colleague"]
    assert colleague.therapist_id is not None
    before = stored(engine, colleague.therapist_id)
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    with Session(engine) as session, session.begin():
        act_as(session, API_ROLE, {"sub": str(me.id), "role": "therapist"})
        with pytest.raises(sa_exc.ProgrammingError) as refused:
            locations.record_pings(session, locations.TherapistRef(colleague.therapist_id, crew["vendor"].id),
                                   [{"latitude": Decimal("18.52"), "longitude": Decimal("73.87"), "timestamp": stamp}])
        session.rollback()
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"
    assert stored(engine, colleague.therapist_id) == before


def test_a_batch_naming_another_therapist_stores_none_of_its_fixes(
    app: Any, engine: Engine, crew: dict[str, Account],
) -> None:
    """The one-round-trip path looks the therapist up inside the insert: a batch that names someone
    else's id is refused with the field error and stores nothing, not even as the caller's own."""
    me, colleague = crew["therapist"], crew["colleague"]
    mine, theirs = stored(engine, me.therapist_id), stored(engine, colleague.therapist_id)
    response = post(app, me, {"therapist_id": str(colleague.therapist_id), "pings": [ping(), ping(3)]})
    assert response.status_code == 422, response.json
    assert response.json["errors"] == {"therapist_id": ["A therapist posts only their own locations."]}
    assert (stored(engine, me.therapist_id), stored(engine, colleague.therapist_id)) == (mine, theirs)
    named = post(app, me, {"therapist_id": str(me.therapist_id), "pings": [ping(2)]})
    assert named.status_code == 201, named.json
    assert stored(engine, me.therapist_id) == mine + 1


def test_a_batch_leaves_its_pooled_connection_as_it_found_it(app: Any, crew: dict[str, Account]) -> None:
    """The role, the claims and the asynchronous commit of a batch's transaction are transaction-local:
    the next user of the app's pooled connection is the owner again, durable, with no claims."""
    from web.extension import Ombaro

    assert post(app, crew["therapist"], {"pings": [ping(1)]}).status_code == 201
    with app.app_context():
        engine = Ombaro.get().engine
        assert engine.pool.checkedout() == 0
        with engine.connect() as conn:
            seen = conn.execute(text("SELECT current_user, current_setting('synchronous_commit'), "
                                     "coalesce(current_setting('request.jwt.claims', true), '')")).one()
    assert seen[0] != API_ROLE and seen[1:] == ("on", "")


def test_a_batch_is_stored_exactly_as_sent_and_moving_from_1_kmh(app: Any, engine: Engine,
                                                                 crew: dict[str, Account]) -> None:
    """The batch travels to PostgreSQL as one JSON text: numbers keep their exact digits (no float on
    the way), offsets are honoured, and a fix without is_moving is moving from 1 km/h."""
    me = make_account(engine, "therapist", vendor_id=crew["vendor"].id)
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=9)).replace(microsecond=123456)
    in_ist = stamp.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    response = post(app, me, {"pings": [
        {"latitude": 18.1234567, "longitude": 73.7654321, "speed": 0.5, "timestamp": in_ist.isoformat()},
        ping(4, speed=1, accuracy=12.25, battery=3),
        ping(2, speed=30, is_moving=False)]})
    assert response.status_code == 201, response.json
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT latitude, longitude, speed, accuracy, battery_level, is_moving, timestamp "
                                 "FROM therapist_locations WHERE therapist_id = :t ORDER BY timestamp"),
                            {"t": me.therapist_id}).all()
    assert rows[0] == (Decimal("18.1234567"), Decimal("73.7654321"), Decimal("0.5"), None, None, False, stamp)
    assert rows[1][2:6] == (Decimal("1"), Decimal("12.25"), 3, True)
    assert rows[2][2] == Decimal("30") and rows[2][5] is False


def test_a_refused_statement_in_the_one_round_trip_undoes_the_whole_transaction(
        app: Any, engine: Engine, crew: dict[str, Account]) -> None:
    """web.extension.caller_write runs as the request role under row-level security: a row for
    another therapist is refused (42501) and raised as the session would raise it (so web/errors.py
    answers the same problem), and the caller's own row queued before it is not stored either."""
    from flask import g

    from web.auth import CurrentUser
    from web.extension import caller_write

    me, colleague = crew["therapist"], crew["colleague"]
    before = (stored(engine, me.therapist_id), stored(engine, colleague.therapist_id))
    insert = ("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
              "VALUES (%s, 18.52, 73.87, now() - interval '3 seconds')")

    def queue(driver: Any) -> Callable[[], None]:
        driver.cursor().execute(insert, (me.therapist_id,))
        driver.cursor().execute(insert, (colleague.therapist_id,))
        return lambda: None

    with app.test_request_context(), pytest.raises(sa_exc.ProgrammingError) as refused:
        g.user = CurrentUser(me.id, "therapist")
        caller_write(queue)
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"
    assert (stored(engine, me.therapist_id), stored(engine, colleague.therapist_id)) == before


def test_a_batch_is_one_round_trip_and_leaves_its_connection_as_it_found_it(
        app: Any, engine: Engine, crew: dict[str, Account], tmp_path: Any) -> None:
    """web.extension.caller_write sends the claims and the queued statements with one Sync and reads
    one ReadyForQuery (issue 16, session 5: psycopg's own transaction in a pipeline synced after
    BEGIN, after commit() and at the pipeline's exit); the connection goes back to the pool out of
    autocommit and idle, after a commit and after a refused statement alike."""
    from flask import g

    from web.auth import CurrentUser
    from web.extension import Ombaro, caller_write

    me, colleague = crew["therapist"], crew["colleague"]
    insert = ("INSERT INTO therapist_locations (therapist_id, latitude, longitude, timestamp) "
              "VALUES (%s, 18.52, 73.87, now() - interval '3 seconds')")
    before = stored(engine, me.therapist_id)

    def queue_for(therapist_id: uuid.UUID) -> Callable[[Any], Callable[[], None]]:
        def queue(driver: Any) -> Callable[[], None]:
            driver.cursor().execute(insert, (therapist_id,))
            return lambda: None
        return queue

    def refused() -> None:
        with pytest.raises(sa_exc.ProgrammingError):
            caller_write(queue_for(colleague.therapist_id))

    with app.test_request_context():
        g.user = CurrentUser(me.id, "therapist")
        pool = Ombaro.get().engine.pool
        written = traced(pool, tmp_path / "written.trace", lambda: caller_write(queue_for(me.therapist_id)))
        undone = traced(pool, tmp_path / "refused.trace", refused)
        assert Ombaro.get().engine.pool.checkedout() == 0
        pooled = Ombaro.get().engine.raw_connection()
        try:
            assert pooled.driver_connection.autocommit is False
            assert pooled.driver_connection.info.transaction_status == 0  # IDLE
        finally:
            pooled.close()
    for sent in (written, undone):
        assert sum("\tF\t" in line and "\tSync" in line for line in sent) == 1, sent
    assert sum("\tB\t" in line and "\tReadyForQuery" in line for line in written) == 1, written
    # The aborted transaction ended at the Sync: the server's ReadyForQuery says idle ("I"), not failed ("E").
    assert [line.split()[-1] for line in undone if "\tB\t" in line and "\tReadyForQuery" in line] == ["I"], undone
    assert stored(engine, me.therapist_id) == before + 1


def test_a_batch_is_three_statements_in_the_pipelines_own_transaction(
        app: Any, engine: Engine, tmp_path: Any, crew: dict[str, Account]) -> None:
    """A batch's round trip carries three statements (issue 16, session 6): the role, the claims and
    the asynchronous commit in one, the insert, the read of the latest position. No BEGIN or COMMIT:
    the statements up to the Sync are one transaction, committed there (the refusals that roll it
    back: test_a_refused_statement_in_the_one_round_trip_undoes_the_whole_transaction)."""
    from web.extension import Ombaro

    me = make_account(engine, "therapist", vendor_id=crew["vendor"].id)
    with app.app_context():
        pool = Ombaro.get().engine.pool
    sent = traced(pool, tmp_path / "batch.trace",
                  lambda: post(app, me, {"pings": [ping(3), ping(2)]}).status_code == 201 or pytest.fail("refused"))
    to_server = [line for line in sent if "\tF\t" in line]
    # From the statement that takes the request role on (authentication's own look-up comes first).
    to_server = to_server[next(n for n, line in enumerate(to_server) if "\tBind\t" in line and API_ROLE in line):]
    assert sum("\tExecute\t" in line for line in to_server) == 3, to_server
    assert sum("\tSync" in line for line in to_server) == 1, to_server
    assert not [line for line in to_server if "BEGIN" in line or "COMMIT" in line], to_server
    settings = [line for line in to_server if "\tBind\t" in line and "'synchronous_commit' 3 'off'" in line]
    assert len(settings) == 1 and "request.jwt.claims" not in settings[0], to_server
    assert stored(engine, me.therapist_id) == 2


def test_a_transaction_sets_its_settings_with_the_callers_role(
        app: Any, crew: dict[str, Account]) -> None:
    """caller_write's `settings` are transaction-local settings sent in the statement that sets the
    role and claims: the queued statements see them, the next user of the connection does not."""
    from flask import g

    from web.auth import CurrentUser
    from web.extension import Ombaro, caller_write

    seen = "SELECT current_user, current_setting('synchronous_commit'), current_setting('lock_timeout')"

    def queue(driver: Any) -> Callable[[], Any]:
        cursor = driver.cursor()
        cursor.execute(seen)
        return cursor.fetchone

    with app.test_request_context():
        g.user = CurrentUser(crew["therapist"].id, "therapist")
        inside = caller_write(queue, settings={"synchronous_commit": "off", "lock_timeout": "2s"})
        plain = caller_write(queue)
        with Ombaro.get().engine.connect() as conn:
            after = conn.execute(text(seen)).one()
    assert inside == (API_ROLE, "off", "2s")
    assert plain == (API_ROLE, "on", after[2])
    assert after[0] != API_ROLE and after[1:] == ("on", after[2]) and after[2] != "2s"
