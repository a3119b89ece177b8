"""The hot listing (`GET /api/v1/bookings`) builds its JSON from plain rows (web/plain.py), not from
ORM objects through BookingSchema: its answer must be byte for byte what the schema's dump of the
ORM listing gives, for every field type, NULLs, every role's rows and the filters."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from flask import jsonify
from marshmallow import Schema, fields
from sqlalchemy import Column, Engine, MetaData, Numeric, Table, Uuid, event, text
from sqlalchemy.dialects.postgresql import JSONB

from ombaro.bookings import queries
from tests.factories import dispatch as factory
from tests.factories.accounts import Account, client_for, make_account
from tests.factories.bookings import Shop, promotion
from web import plain
from web.api.bookings import LISTED, SERVED, BookingSchema
from web.auth import current_user, resolve_user
from web.extension import Ombaro, caller_rows, db_session
from web.plain import PlainDump, json_response

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def varied_values(n: int) -> dict[str, Any]:
    """A booking's listed fields with the n-th of several shapes: NULLs, money that needs rounding
    or has an exponent, microseconds, offsets, nested and non-ASCII JSON."""
    money = [Decimal("1770.00"), Decimal("0"), Decimal("12.345"), Decimal("12.355"), Decimal("1E+3"),
             Decimal("-0.005"), Decimal("99999999.99"), Decimal("0.1")]
    return {
        "id": uuid.uuid4(), "booking_number": f"OBO-{n:04d}", "customer_id": uuid.uuid4(), "vendor_id": uuid.uuid4(),
        "booking_type": "home_service", "service_location": {"address": "12 Koregaon Park, पुणे", "city": "Pune",
                                                             "latitude": 18.5 + n / 1000, "nested": {"b": [1, None]}},
        "booking_date": dt.date(2026, 1 + n % 12, 1 + n % 28),
        "booking_time": dt.time(9 + n % 12, (n * 7) % 60, 0, (n % 3) * 250_000),
        "status": "confirmed", "payment_status": "pending",
        "subtotal_amount": money[n % len(money)], "discount_amount": money[(n + 1) % len(money)],
        "tax_amount": money[(n + 2) % len(money)], "total_amount": money[(n + 3) % len(money)],
        "promotion_id": uuid.uuid4() if n % 2 else None,
        "special_instructions": None if n % 3 == 0 else "ring twice \u2014 \"quietly\"",
        "cancellation_reason": None if n % 4 else "changed plans",
        "cancelled_at": None if n % 4 else dt.datetime(2026, 3, 1, 10, 0, n % 60, n * 1001 % 1_000_000,
                                                          tzinfo=dt.UTC if n % 8 else IST),
        "dispatch_note": None if n % 5 else {"chosen": None, "excluded": {"gender": n}},
        "created_at": dt.datetime(2026, 2, 1, 8, 30, tzinfo=dt.UTC) + dt.timedelta(microseconds=n),
    }


def test_the_plain_dump_is_the_schemas_dump_for_every_field_type_and_null() -> None:
    rows = [varied_values(n) for n in range(40)]
    plain = LISTED.many(tuple(row[name] for name in LISTED.columns) for row in rows)
    assert plain == BookingSchema(many=True).dump([SimpleNamespace(**row) for row in rows])
    assert json.dumps(plain, sort_keys=True) == json.dumps(
        BookingSchema(many=True).dump([SimpleNamespace(**row) for row in rows]), sort_keys=True)


def awkward_text(rng: random.Random) -> str:
    """Quotes, backslashes, control characters, line separators, non-ASCII and astral characters."""
    return "".join(rng.choice(['"', "\\", "\x00", "\x1f", "\n", "\u2028", "\x7f", "é", "पुणे", "\U0001f600", "a", "/"])
                   for _ in range(rng.randrange(12)))


def test_the_plain_json_is_the_text_jsonify_sends_for_the_schemas_dump(app: Any) -> None:
    """web/plain.PlainDump.json writes the listing's JSON without the dicts: the same text, byte for
    byte, as Flask's jsonify of BookingSchema's dump, for the varied rows and random awkward strings,
    nested values and numbers; in debug mode (jsonify indents) json_response gives jsonify's text."""
    rng = random.Random(16)
    rows = [varied_values(n) for n in range(40)]
    for n, row in enumerate(rows):
        if n % 2:
            row["special_instructions"] = awkward_text(rng)
            number = rng.random() * 10 ** rng.randrange(-9, 23)
            row["service_location"] = {awkward_text(rng): awkward_text(rng),
                                       "z": [number, -0.0, 10 ** 30, True, None, {"b": 1, "a": [awkward_text(rng)]}]}
    tuples = [tuple(row[name] for name in LISTED.columns) for row in rows]
    with app.app_context():
        for some in (tuples, tuples[:1], []):
            dumped = BookingSchema(many=True).dump([SimpleNamespace(**row) for row in rows[:len(some)]])
            expected = jsonify(dumped).get_data()
            assert LISTED.json(some).encode() == expected
            answer = json_response(LISTED, some)
            assert (answer.get_data(), answer.mimetype) == (expected, "application/json")
        app.debug = True
        assert json_response(LISTED, tuples).get_data() == jsonify(LISTED.many(tuples)).get_data()
        assert b"\n  " in json_response(LISTED, tuples).get_data()


def test_the_plain_dump_names_the_rounding_it_was_given() -> None:
    class Rounded(Schema):
        amount = fields.Decimal(as_string=True, places=2, rounding=decimal.ROUND_HALF_UP)

    values = [Decimal("0.125"), Decimal("-0.125"), None, Decimal("7")]
    assert PlainDump(Rounded()).many((v,) for v in values) == Rounded(many=True).dump(
        [SimpleNamespace(amount=v) for v in values])


def test_a_field_without_a_plain_dump_is_refused_when_the_dumper_is_built() -> None:
    class Unknown(Schema):
        amount = fields.Float(as_string=True)  # a plain Float is known (JobSchema's progress)

    class Renamed(Schema):
        name = fields.String(attribute="other")

    with pytest.raises(TypeError, match="amount"):
        PlainDump(Unknown())
    with pytest.raises(TypeError):
        PlainDump(Renamed())


def test_the_served_listing_takes_uuids_money_and_json_as_the_servers_text() -> None:
    """SERVED (issue 16, session 7) selects the columns whose server text gives the schema's value
    as text; the listing's statement casts exactly those; a numeric of another scale than the
    field's places, or a column of another type, stays typed (quantized and written as before)."""
    assert set(SERVED.as_text) == {"id", "customer_id", "vendor_id", "promotion_id", "subtotal_amount",
                                   "discount_amount", "tax_amount", "total_amount", "service_location",
                                   "dispatch_note"}
    statement = str(queries.row_listing(SERVED.columns, "customer", False, SERVED.as_text))
    assert statement.count("AS TEXT)") == len(SERVED.as_text)
    assert "CAST(bookings.total_amount AS TEXT) AS total_amount" in statement
    assert "CAST" not in str(queries.row_listing(LISTED.columns, "customer", False))

    class Mixed(Schema):
        amount = fields.Decimal(as_string=True, places=2)
        rate = fields.Decimal(as_string=True, places=2)
        ref = fields.UUID()
        note = fields.Dict()
        other = fields.UUID()

    table = Table("mixed", MetaData(), Column("amount", Numeric(10, 2)), Column("rate", Numeric(10, 3)),
                  Column("ref", Uuid), Column("note", JSONB), Column("other", Numeric(10, 2)))
    dump = PlainDump(Mixed(), table)
    assert dump.as_text == ("amount", "ref", "note")
    row = ("12.30", Decimal("0.125"), "5f0c1e9e-2f61-4c7a-9d55-0d1f0d3c2b1a", '{"b": 1, "a": "\u00e9"}', None)
    expected = Mixed(many=True).dump([SimpleNamespace(amount=Decimal("12.30"), rate=Decimal("0.125"),
                                                      ref=uuid.UUID(row[2]), note={"b": 1, "a": "é"}, other=None)])
    assert dump.many([row]) == expected
    assert dump.json([row]) == json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n"
    encoded = plain._nested_text.cache_info()
    assert dump.json([row, row]) == "[" + dump.json([row])[1:-2] + "," + dump.json([row])[1:-2] + "]\n"
    assert plain._nested_text.cache_info().misses == encoded.misses  # a JSON text is encoded once, then kept


@pytest.fixture(scope="module")
def awkward(engine: Engine, shop: Shop) -> Account:
    """A customer with 16 bookings whose texts, JSON and money are random awkward values stored in
    PostgreSQL (quotes, backslashes, control characters, U+2028, DEL, non-ASCII, astral; nested JSON
    with numbers of every size; amounts from 0.00 to 99999999.99)."""
    rng = random.Random(7)
    customer = make_account(engine, "customer")
    factory.customer(engine, customer_id=customer.id)

    def db_text() -> str:  # PostgreSQL's text and jsonb hold no NUL
        return awkward_text(rng).replace("\x00", "")

    def money() -> Decimal:
        return Decimal(rng.randrange(10 ** rng.randrange(1, 11))).scaleb(-2)

    for n in range(16):
        booking_id = factory.booking(engine, vendor_id=shop.vendor.id, customer_id=customer.id,
                                     day=factory.today() + dt.timedelta(days=n), at="10:00",
                                     service_id=shop.service_id)
        location = {db_text(): db_text(), "city": db_text(), "latitude": rng.random() * 10 ** rng.randrange(-9, 23),
                    "z": [-0.0, 10 ** 30, True, None, 1.5e-7, {"b": 1, "a": [db_text()], "é": {}}]}
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE bookings SET subtotal_amount = :s, discount_amount = :d, tax_amount = :t, total_amount = :tot, "
                "special_instructions = :si, cancellation_reason = :cr, dispatch_note = CAST(:dn AS jsonb), "
                "service_location = CAST(:sl AS jsonb) WHERE id = :id"),
                {"s": money(), "d": money(), "t": money(), "tot": money(), "si": db_text(),
                 "cr": db_text() if n % 2 else None,
                 "dn": (None, "null", json.dumps({db_text(): [n, db_text()]}), "{}")[n % 4],
                 "sl": json.dumps(location, ensure_ascii=bool(n % 2)), "id": booking_id})
    return customer


def test_the_listing_of_awkward_stored_values_is_byte_for_byte_the_schemas(app: Any, awkward: Account) -> None:
    """The served listing (uuids, money and JSON as the server's text) answers what BookingSchema's
    dump of the ORM rows gives, byte for byte, for random awkward values read back from PostgreSQL."""
    answer = client_for(app, awkward).get("/api/v1/bookings")
    assert answer.status_code == 200, answer.json
    assert len(answer.json) == 16
    assert answer.get_data() == schema_listing(app, awkward, "")
    assert answer.get_data() == client_for(app, awkward).get("/api/v1/bookings?limit=16").get_data()


def schema_listing(app: Any, account: Account, query: str) -> bytes:
    """What the endpoint answered before issue 16: the ORM listing dumped through BookingSchema."""
    with app.test_request_context(f"/api/v1/bookings{query}", headers=account.headers):
        resolve_user()
        args = dict(status=[v for k, v in _pairs(query) if k == "status"],
                    limit=int(dict(_pairs(query)).get("limit", 50)))
        found = queries.list_bookings(db_session(), role=current_user().role, statuses=args["status"],
                                      limit=args["limit"])
        body: bytes = jsonify(BookingSchema(many=True).dump(found)).get_data()
        db_session().close()
        return body


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(part.split("=", 1)) for part in query.lstrip("?").split("&") if part]  # type: ignore[misc]


@pytest.fixture(scope="module")
def booked(engine: Engine, shop: Shop, marketer: Account) -> dict[str, Account]:
    """A customer with 30 bookings of varied values at the shop, one other customer's booking; no two
    at the same date and time (the listing's order leaves ties to PostgreSQL)."""
    customer = make_account(engine, "customer")
    other = make_account(engine, "customer")
    factory.customer(engine, customer_id=customer.id)
    factory.customer(engine, customer_id=other.id)
    code = promotion(engine, marketer)
    with engine.connect() as conn:
        promotion_id = conn.execute(text("SELECT id FROM promotions WHERE code = :c"), {"c": code}).scalar_one()
    for n in range(30):
        booking_id = factory.booking(engine, vendor_id=shop.vendor.id, customer_id=customer.id,
                                     day=factory.today() + dt.timedelta(days=n % 9),
                                     at=f"{9 + n % 10:02d}:{n % 4 * 15:02d}",
                                     service_id=shop.service_id, status=("confirmed", "pending", "cancelled")[n % 3])
        values = varied_values(n)
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE bookings SET subtotal_amount = :s, discount_amount = :d, tax_amount = :t, total_amount = :tot, "
                "promotion_id = :p, special_instructions = :si, cancellation_reason = :cr, cancelled_at = :ca, "
                "dispatch_note = CAST(:dn AS jsonb), service_location = CAST(:sl AS jsonb) WHERE id = :id"),
                {"s": abs(values["subtotal_amount"]), "d": abs(values["discount_amount"]),
                 "t": abs(values["tax_amount"]), "tot": abs(values["total_amount"]),
                 "p": promotion_id if n % 2 else None, "si": values["special_instructions"],
                 "cr": values["cancellation_reason"], "ca": values["cancelled_at"],
                 "dn": json.dumps(values["dispatch_note"]) if values["dispatch_note"] else None,
                 "sl": json.dumps(values["service_location"]), "id": booking_id})
    factory.booking(engine, vendor_id=shop.vendor.id, customer_id=other.id, day=factory.today(), at="10:00",
                    service_id=shop.service_id)
    return {"customer": customer, "other": other, "vendor": shop.vendor}


@pytest.mark.parametrize("query", ["", "?limit=200", "?limit=7", "?status=cancelled",
                                   "?status=pending&status=confirmed&limit=3"])
def test_the_listing_answers_byte_for_byte_what_the_schema_dumps(
    app: Any, booked: dict[str, Account], query: str,
) -> None:
    for who in ("customer", "other", "vendor"):
        answer = client_for(app, booked[who]).get(f"/api/v1/bookings{query}")
        assert answer.status_code == 200, answer.json
        assert answer.get_data() == schema_listing(app, booked[who], query), who
    mine = client_for(app, booked["customer"]).get("/api/v1/bookings?limit=200").json
    assert len(mine) == 30 and {b["customer_id"] for b in mine} == {str(booked["customer"].id)}
    assert {b["total_amount"] for b in mine} >= {"0.00", "0.10", "1000.00", "12.36", "99999999.99"}
    assert any(b["cancelled_at"] is None for b in mine) and any(b["cancelled_at"] for b in mine)


def test_row_level_security_still_decides_which_rows_the_listing_sees(app: Any, booked: dict[str, Account]) -> None:
    """The statement names the caller's rows (for the index), but the policies decide: the same
    listing without that condition (as for a desk role) still gives a customer only their own."""
    with app.test_request_context("/api/v1/bookings", headers=booked["other"].headers):
        resolve_user()
        rows = caller_rows(queries.row_listing(("id", "customer_id"), None, False), {"limit": 200})
    assert [customer_id for _id, customer_id in rows] == [booked["other"].id]
    assert client_for(app).get("/api/v1/bookings").status_code == 401


def test_a_connection_the_server_ended_is_dropped_and_the_listing_answers(
    app: Any, engine: Engine, booked: dict[str, Account],
) -> None:
    """The listing runs on the pooled driver connection (web/extension.caller_rows): a disconnect
    there drops the pool as SQLAlchemy would and the read is tried once more on a new connection,
    so the caller never sees the ended connection."""
    customer = client_for(app, booked["customer"])
    assert customer.get("/api/v1/bookings").status_code == 200
    with app.app_context():
        pooled = Ombaro.get().engine.raw_connection()
        pid = pooled.driver_connection.info.backend_pid  # the connection the listing just used
        pooled.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    # The engine's pool may hold other connections from earlier tests (handed out first in turn):
    # enough requests to reach the ended one; none of them fails.
    statuses = [customer.get("/api/v1/bookings").status_code for _ in range(8)]
    assert statuses == [200] * 8, statuses


def test_without_a_query_string_the_listing_takes_the_schemas_defaults_and_a_query_is_still_checked(
    app: Any, booked: dict[str, Account],
) -> None:
    """An empty query string skips webargs (web/openapi.defaults_without_query): the answer is the
    one for the schema's defaults spelled out; any query string is parsed and refused as before."""
    customer = client_for(app, booked["customer"])
    bare = customer.get("/api/v1/bookings")
    assert bare.status_code == 200
    assert bare.get_data() == customer.get("/api/v1/bookings?limit=50").get_data()
    assert bare.get_data() == customer.get("/api/v1/bookings?").get_data()
    assert len(bare.json) == 30  # every status, up to 50
    for refused in ("?limit=0", "?limit=201", "?limit=x", "?status=nope"):
        answer = customer.get(f"/api/v1/bookings{refused}")
        assert answer.status_code == 422, (refused, answer.json)
    assert client_for(app).get("/api/v1/bookings").status_code == 401  # the permission still comes first


def prepared_executions(app: Any, like: str = "ombaro_rows_%") -> int:
    """How often the caller_rows statements (named `like`) prepared on the app's idle pooled connections ran."""
    with app.app_context():
        engine = Ombaro.get().engine
        held = [engine.raw_connection() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
        try:
            return sum(pooled.driver_connection.execute(  # type: ignore[union-attr]
                "SELECT coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements "
                "WHERE name LIKE %s", (like,)).fetchone()[0] for pooled in held)
        finally:
            for pooled in held:
                pooled.close()


def test_the_listing_is_planned_once_a_connection_and_the_policies_still_decide(
    app: Any, booked: dict[str, Account], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listing's statement is prepared on each pooled connection and run by name (web/extension
    .caller_rows), by a cursor kept with the connection: every read runs the prepared statement,
    not a newly planned one, and makes no new cursor on a connection that has one. Once PostgreSQL
    uses its generic plan (after five runs), another customer and the vendor still get exactly
    their own rows."""
    customer = client_for(app, booked["customer"])
    assert customer.get("/api/v1/bookings").status_code == 200
    before = prepared_executions(app)
    with app.app_context():
        connections = Ombaro.get().engine.pool.checkedin()  # type: ignore[attr-defined]
    cursors: list[object] = []
    make_cursor = psycopg.ClientCursor
    monkeypatch.setattr(psycopg, "ClientCursor",
                        lambda connection: cursors.append(connection) or make_cursor(connection))
    for _ in range(10):
        assert len(customer.get("/api/v1/bookings").json) == 30
    monkeypatch.undo()
    assert prepared_executions(app) - before == 10
    assert len(cursors) < connections, cursors  # at most one for each connection that had served no listing
    for who in ("other", "vendor"):
        answer = client_for(app, booked[who]).get("/api/v1/bookings")
        assert answer.get_data() == schema_listing(app, booked[who], ""), who
    assert [b["customer_id"] for b in client_for(app, booked["other"]).get("/api/v1/bookings").json] == [
        str(booked["other"].id)]


def test_the_role_and_claims_are_set_by_a_prepared_statement_and_still_decide(
    app: Any, booked: dict[str, Account],
) -> None:
    """The role-and-claims statement a listing runs first is prepared on each pooled connection as
    well (issue 16, session 8): every read runs it by name, and the claims it sets are the caller's
    of that read: customers read in turn, past PostgreSQL's five custom plans, each get exactly
    their own rows, and so does the vendor."""
    customer, other = client_for(app, booked["customer"]), client_for(app, booked["other"])
    assert customer.get("/api/v1/bookings").status_code == 200
    before = prepared_executions(app, "ombaro_act_as")
    for _ in range(6):
        assert customer.get("/api/v1/bookings").get_data() == schema_listing(app, booked["customer"], "")
        assert other.get("/api/v1/bookings").get_data() == schema_listing(app, booked["other"], "")
    assert prepared_executions(app, "ombaro_act_as") - before == 12
    assert client_for(app, booked["vendor"]).get("/api/v1/bookings").get_data() == schema_listing(
        app, booked["vendor"], "")


def test_the_claims_sent_are_the_users_claims_as_json() -> None:
    """caller_rows and caller_write send the claims' JSON kept for each user (web/extension
    ._claims_text): the text act_as would send, another user's or role's own, none for anonymous."""
    from web.auth import ANONYMOUS, CurrentUser
    from web.extension import _claims_text

    user_id = uuid.uuid4()
    for user in (CurrentUser(id=user_id, role="customer"), CurrentUser(id=user_id, role="vendor"),
                 CurrentUser(id=uuid.uuid4(), role="customer", session_id=uuid.uuid4())):
        assert _claims_text(user) == json.dumps(user.claims(), default=str)
        assert _claims_text(user) == _claims_text(CurrentUser(user.id, user.role, user.session_id))
        assert json.loads(_claims_text(user)) == {"sub": str(user.id), "role": user.role}
    assert _claims_text(ANONYMOUS) == ""


@pytest.mark.parametrize("lost", ["ombaro_rows_%", "ombaro_act_as"])
def test_a_prepared_statement_the_connection_lost_is_prepared_again(
    app: Any, booked: dict[str, Account], lost: str,
) -> None:
    """A pooled connection whose prepared listing (or role-and-claims statement) is gone
    (DEALLOCATE, DISCARD ALL) prepares it again and answers."""
    customer = client_for(app, booked["customer"])
    expected = customer.get("/api/v1/bookings").get_data()
    with app.app_context():
        engine = Ombaro.get().engine
        held = [engine.raw_connection() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
        for pooled in held:
            driver = pooled.driver_connection
            names = [name for (name,) in driver.execute(  # type: ignore[union-attr]
                "SELECT name FROM pg_prepared_statements WHERE name LIKE %s", (lost,))]
            for name in names:
                driver.execute(f"DEALLOCATE {name}")  # type: ignore[union-attr]
            driver.commit()  # type: ignore[union-attr]
            pooled.close()
    assert sum(1 for pooled in held) >= 1
    for _ in range(4):
        assert customer.get("/api/v1/bookings").get_data() == expected
    assert prepared_executions(app) >= 1


def test_behind_a_transaction_pooler_nothing_is_prepared(app_factory: Any, booked: dict[str, Account]) -> None:
    """OMBARO_DATABASE_POOLER=transaction: a prepared statement would not follow the client to the
    next server connection, so the listing sends its statement's text, as before."""
    pooled_app = app_factory(OMBARO_DATABASE_POOLER="transaction")
    customer = client_for(pooled_app, booked["customer"])
    for _ in range(3):
        assert customer.get("/api/v1/bookings").get_data() == schema_listing(pooled_app, booked["customer"], "")
    assert prepared_executions(pooled_app, "ombaro_%") == 0


def test_a_listing_survives_psycopg_deallocating_every_statement_on_a_rollback(
    app: Any, booked: dict[str, Account],
) -> None:
    """psycopg sends DEALLOCATE ALL when it rolls back a connection on which it prepared statements
    of its own (any statement run five times; SQLAlchemy rolls back every session that ends
    without a commit), and that takes the listing's prepared statement too. However many pooled
    connections lost it, every read answers, each connection prepares it again, and none is
    dropped (on each, the read is run once more after preparing). Before, the read moved to the
    next connection, which had lost it too: a 500."""
    customer = client_for(app, booked["customer"])
    expected = customer.get("/api/v1/bookings").get_data()
    with app.app_context():
        engine = Ombaro.get().engine
        for pooled in [engine.raw_connection() for _ in range(3)]:
            pooled.close()  # at least three pooled connections (the pool keeps up to five)
        pooled_count = engine.pool.checkedin()  # type: ignore[attr-defined]
        for _ in range(pooled_count):  # the pool hands them out in turn: each prepares the listing
            assert customer.get("/api/v1/bookings").get_data() == expected
        held = [engine.raw_connection() for _ in range(pooled_count)]
        for pooled in held:
            driver = pooled.driver_connection
            assert driver.execute(  # type: ignore[union-attr]
                "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'ombaro_rows_%'").fetchone()[0] >= 1
            for n in range(6):
                driver.execute("SELECT %s::int", (n,))  # type: ignore[union-attr]  # psycopg prepares it
            driver.rollback()  # type: ignore[union-attr]  # psycopg: ROLLBACK, then DEALLOCATE ALL
            assert driver.execute(  # type: ignore[union-attr]
                "SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
            driver.rollback()  # type: ignore[union-attr]
            pooled.close()
        connects: list[object] = []

        def connected(*args: object) -> None:
            connects.append(args)

        event.listen(engine, "connect", connected)
        try:
            for _ in range(2 * pooled_count):
                assert customer.get("/api/v1/bookings").get_data() == expected
        finally:
            event.remove(engine, "connect", connected)
    assert pooled_count >= 3
    assert connects == []  # no connection dropped and made again
    assert prepared_executions(app) >= pooled_count  # each prepared it again and ran it


@pytest.mark.parametrize("pooler", ["", "transaction"])
def test_a_read_the_server_refuses_raises_its_error_and_the_connection_reads_on(
    app_factory: Any, booked: dict[str, Account], pooler: str,
) -> None:
    """caller_rows sends its one query through libpq itself, not a psycopg cursor (issue 16, session
    10): a statement the server refuses still raises psycopg's error for it, its transaction is
    rolled back, and every pooled connection is left idle and out of autocommit, as SQLAlchemy pools
    it, and reads on: the next reads on the same connections give the caller exactly their rows."""
    reading = app_factory(OMBARO_DATABASE_POOLER=pooler) if pooler else app_factory()
    statement = queries.row_listing(("id", "customer_id"), None, False)
    for _ in range(3):
        with reading.test_request_context("/api/v1/bookings", headers=booked["other"].headers):
            resolve_user()
            with pytest.raises(psycopg.errors.InvalidRowCountInLimitClause):
                caller_rows(statement, {"limit": -1})
            rows = caller_rows(statement, {"limit": 200})
        assert [customer_id for _id, customer_id in rows] == [booked["other"].id]
    with reading.app_context():
        engine = Ombaro.get().engine
        held = [engine.raw_connection() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
        try:
            assert held
            for pooled in held:
                driver = pooled.driver_connection
                assert driver.autocommit is False  # type: ignore[union-attr]
                assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # type: ignore[union-attr]
        finally:
            for pooled in held:
                pooled.close()
    customer = client_for(reading, booked["customer"])
    for _ in range(3):
        assert customer.get("/api/v1/bookings").get_data() == schema_listing(reading, booked["customer"], "")


def test_the_plain_json_writes_a_key_with_a_percent_sign_as_it_is() -> None:
    """The row writer fills one text with a `%s` for each value (issue 16, session 10): a `%` in a
    field's name is written as it is, not taken for a placeholder."""
    class Odd(Schema):
        share = fields.String(data_key="share %s 100%")
        more = fields.Integer(data_key="%d")

    rows = [("a%sb", 7), (None, None)]
    dumped = Odd(many=True).dump([SimpleNamespace(share=s, more=m) for s, m in rows])
    assert PlainDump(Odd()).json(rows) == json.dumps(dumped, sort_keys=True, separators=(",", ":")) + "\n"
