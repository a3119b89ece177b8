"""Hypothesis throws hostile and typed JSON bodies, query strings and forms at every endpoint of the
API (the URL map, enumerated), as the super admin and anonymously, against the demo marketplace.
Whatever it sends, no answer is a 5xx; a refused request (4xx) writes nothing; a body holding
something the sanitation step refuses (NUL, an unpaired surrogate, nesting deeper than 32, an
integer of more than 30 digits, NaN, Infinity, 1e309) is a 400 whose `errors` points at the
offending place. Typed bodies (each field's own type, near and beyond its bounds, real demo ids in
paths and bodies) reach the handlers, the domain and the database."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate
from sqlalchemy import text

from tests.web.endpoints import BODY_METHODS, Endpoint, endpoints
from tests.web.helpers import Demo
from web.sanitize import MAX_DEPTH, MAX_INTEGER_DIGITS, MAX_URI_BYTES
from web.schemas import Boolean, Integer, Money

pytestmark = pytest.mark.db

EXAMPLES = 120  # per test: well under a minute each on the 2-core development machine
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Raw:
    """A token json.dumps cannot write (or would refuse to): NaN, 1e309, a 5,000-digit integer."""

    text: str
    hostile: bool


HOSTILE_CHARACTERS = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
PLAIN_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
HOSTILE_TEXT = st.builds(lambda a, c, b: a + c + b, PLAIN_TEXT, HOSTILE_CHARACTERS, PLAIN_TEXT)
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-1e400", "1E999"]).map(lambda t: Raw(t, True)),
    st.integers(MAX_INTEGER_DIGITS + 1, 6000).map(lambda n: Raw("9" * n, True)),
    st.integers(MAX_INTEGER_DIGITS + 1, 6000).map(lambda n: Raw("-1" + "0" * (n - 1), True)),
)
# Values that pass the sanitation step and must then be judged by the fields: bounds, types, places.
EDGY_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30) + 1, 10**30 - 1),
    st.floats(allow_nan=False, allow_infinity=False), PLAIN_TEXT,
    st.sampled_from([0, 1, -1, 1e19, 1e20, -1e20, 2**31, 2**63, 0.001, "1e20", "12.345", "NaN", "true", "false",
                     "2026-01-01", "2026-13-45", "00000000-0000-0000-0000-000000000000", "", " ", "x" * 5000]),
)


def _leaves(hostile: bool) -> st.SearchStrategy[Any]:
    return st.one_of(HOSTILE_TEXT, HOSTILE_NUMBERS) if hostile else EDGY_VALUES


def _documents(names: list[str], hostile: bool) -> st.SearchStrategy[Any]:
    """A JSON document on the endpoint's own field names (and others), nested a little."""
    keys = st.sampled_from(names) if names else PLAIN_TEXT
    values = st.recursive(EDGY_VALUES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(keys, inner, max_size=3)),
                          max_leaves=8)
    document = st.dictionaries(st.one_of(keys, PLAIN_TEXT), values, max_size=6)
    if not hostile:
        return st.one_of(document, values)
    return st.one_of(
        # one hostile value (or member name) somewhere in an otherwise plausible document
        st.tuples(document, st.one_of(keys, PLAIN_TEXT), _leaves(True)).map(lambda t: {**t[0], t[1]: t[2]}),
        st.tuples(document, HOSTILE_TEXT, values).map(lambda t: {**t[0], t[1]: t[2]}),
        # a value nested beyond the limit
        st.tuples(document, keys, st.integers(MAX_DEPTH + 1, MAX_DEPTH + 40)).map(
            lambda t: {**t[0], t[1]: _nest(t[2])}),
    )


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: NUL and lone surrogates travel as \\u escapes


def _is_hostile(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, Raw):
        return value.hostile
    if isinstance(value, str):
        return any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_is_hostile(k) or _is_hostile(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_is_hostile(v, depth + 1) for v in value)
    return False


def _masked(name: str) -> str:
    return "".join("?" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in name)


def _resolve(document: Any, pointer: str) -> bool:
    """Does the RFC 6901 pointer name a place in the document (member names with a refused
    character are reported with `?` in its place)?"""
    node = document
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            match = next((k for k in node if k == part or _masked(k) == part), None)
            if match is None:
                return False
            node = node[match]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _send(demo: Demo, endpoint: Endpoint, admin: bool, path: str | None = None, **kwargs: Any) -> Any:
    return demo.client(admin=admin).open(path or endpoint.path(), method=endpoint.method, **kwargs)


def _typed(field: fields.Field, ids: list[str], depth: int) -> st.SearchStrategy[Any]:
    """Values of the field's own type, near and beyond its bounds, so the request reaches the
    handler, the domain and the database (where a 5xx would hide) as often as the field checks."""
    bounds = next((v for v in field.validators if isinstance(v, validate.Range)), None)
    choices = next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)
    if isinstance(field, fields.Nested) and depth < 4:
        inner = _object(field.schema, ids, depth + 1)
        return st.lists(inner, max_size=3) if field.many else inner
    if isinstance(field, fields.List):
        return st.lists(_typed(field.inner, ids, depth + 1), max_size=3)
    if isinstance(field, Money):
        return st.one_of(st.decimals(field.minimum - 1, field.maximum + 1, places=2).map(str),
                         st.decimals(field.minimum, field.maximum, places=3).map(str),
                         st.sampled_from([str(field.minimum), str(field.maximum), 0.01, 1e19, "1e20", "-0.00"]))
    if isinstance(field, Integer):
        low = bounds.min if bounds is not None and bounds.min is not None else -(2**63)
        high = bounds.max if bounds is not None and bounds.max is not None else 2**63
        return st.one_of(st.integers(low - 2, min(high, low + 50)), st.integers(max(low, high - 50), high + 2),
                         st.sampled_from([0, -1, 2**31, 2**63]))
    if isinstance(field, Boolean):
        return st.sampled_from([True, False, 0, 1, "true"])
    if isinstance(field, fields.UUID):
        return st.one_of(st.sampled_from(ids), st.uuids().map(str))
    if isinstance(field, fields.AwareDateTime | fields.DateTime):
        return st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14)),
                                                       dt.timezone(dt.timedelta(hours=-12))])
                            ).map(lambda d: d.isoformat())
    if isinstance(field, fields.Date):
        return st.dates().map(lambda d: d.isoformat())
    if isinstance(field, fields.Time):
        return st.times().map(lambda t: t.isoformat())
    if isinstance(field, fields.Email):
        return st.emails().map(str)
    if isinstance(field, fields.Float | fields.Decimal):
        low = bounds.min if bounds is not None and bounds.min is not None else -1e6
        high = bounds.max if bounds is not None and bounds.max is not None else 1e6
        return st.one_of(st.floats(low - 1, high + 1), st.decimals(low, high, places=12).map(str))
    if isinstance(field, fields.Dict):
        return st.dictionaries(PLAIN_TEXT, EDGY_VALUES, max_size=4)
    if choices is not None:
        return st.one_of(st.sampled_from(list(choices)), PLAIN_TEXT)
    if isinstance(field, fields.String):
        return st.one_of(st.text(st.characters(codec="utf-8"), max_size=300), st.sampled_from(ids))
    return EDGY_VALUES


def _object(schema: Schema, ids: list[str], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """An object of the schema's fields of their own types: the required ones always, the others
    now and then."""
    loaded = {field.data_key or name: field for name, field in schema.fields.items() if not field.dump_only}
    return st.fixed_dictionaries({name: _typed(f, ids, depth) for name, f in loaded.items() if f.required},
                                 optional={name: _typed(f, ids, depth) for name, f in loaded.items() if not f.required})


@pytest.fixture(scope="module")
def ids(demo: Demo) -> list[str]:
    """Ids that exist in the demo data (and a few that do not), for paths and bodies."""
    tables = ["vendors", "therapists", "employees", "customers", "services", "bookings", "therapist_assignments",
              "payments", "payment_settlements", "campaigns", "jobs", "schedules", "leave_requests",
              "salary_records", "payroll_runs", "notifications", "settlement_adjustments"]
    found: list[str] = []
    for table in tables:
        if demo.scalar("SELECT to_regclass(:t) IS NOT NULL", t=table):
            with demo.engine.connect() as conn:
                found += [str(i) for i in conn.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 4")).scalars()]
    assert len(found) > 30
    return found + [str(uuid.uuid4()) for _ in range(5)]


def test_the_fingerprint_sees_an_insert_an_update_and_a_delete(demo: Demo) -> None:
    """The "writes nothing" checks below can fail: each kind of write changes the fingerprint."""
    statements = ["INSERT INTO holidays (id, date, name, kind) VALUES (gen_random_uuid(), DATE '2040-01-01', "
                  "'Fingerprint day', 'gazetted')",
                  "UPDATE holidays SET name = 'Fingerprint day, renamed' WHERE date = DATE '2040-01-01'",
                  "DELETE FROM holidays WHERE date = DATE '2040-01-01'"]
    for statement in statements:
        before = demo.fingerprint()
        with demo.engine.begin() as conn:
            conn.execute(text(statement))
        assert demo.fingerprint() != before, statement


@pytest.fixture(scope="module")
def routes(demo: Demo) -> dict[str, list[Endpoint]]:
    found = endpoints(demo.app)
    with_body = [e for e in found if e.method in BODY_METHODS]
    with_query = [e for e in found if e.method == "GET"]
    assert len(with_body) > 40 and len(with_query) > 30  # the whole API, not a corner of it
    return {"body": with_body, "query": with_query}


@FUZZ
@given(data=st.data())
def test_hostile_json_bodies_are_400_pointing_at_the_place_and_write_nothing(demo: Demo, routes: Any,
                                                                             data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(routes["body"]), label="endpoint")
    admin = data.draw(st.booleans(), label="admin")
    document = data.draw(_documents(endpoint.field_names("json"), hostile=True), label="document")
    assert _is_hostile(document)
    before = demo.fingerprint()
    response = _send(demo, endpoint, admin, data=render(document), content_type="application/json")
    assert response.status_code == 400, (endpoint.name, response.status_code, response.get_data(as_text=True)[:500])
    assert response.content_type == "application/problem+json"
    (where,) = response.json["errors"]
    assert where == "_body" or _resolve(document, where), (where, render(document)[:500])
    assert demo.fingerprint() == before


@FUZZ
@given(data=st.data())
def test_edgy_json_bodies_never_answer_5xx_and_refusals_write_nothing(demo: Demo, routes: Any,
                                                                      data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(routes["body"]), label="endpoint")
    admin = data.draw(st.booleans(), label="admin")
    document = data.draw(_documents(endpoint.field_names("json"), hostile=False), label="document")
    before = demo.fingerprint()
    response = _send(demo, endpoint, admin, data=render(document), content_type="application/json")
    event(f"status {response.status_code}")
    assert response.status_code < 500, (endpoint.name, render(document)[:500], response.get_data(as_text=True)[:500])
    if response.status_code >= 400:
        assert response.content_type == "application/problem+json"
        assert demo.fingerprint() == before, (endpoint.name, response.status_code, render(document)[:500])


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_typed_json_bodies_reach_the_domain_without_a_5xx_and_refusals_write_nothing(
        demo: Demo, routes: Any, ids: list[str], data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from([e for e in routes["body"] if e.schemas]), label="endpoint")
    schema = next((schema for location, schema in endpoint.schemas if location == "json"), None)
    document = data.draw(_object(schema, ids) if schema is not None else st.just({}), label="document")
    path = endpoint.rule.rule
    for argument in endpoint.rule.arguments:
        path = path.replace(f"<uuid:{argument}>", data.draw(st.sampled_from(ids), label=argument))
    path = path if "<" not in path else None
    before = demo.fingerprint()
    response = _send(demo, endpoint, True, path=path, json=document)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (endpoint.name, path, document, response.get_data(as_text=True)[:800])
    if response.status_code >= 400:
        assert response.content_type == "application/problem+json"
        assert demo.fingerprint() == before, (endpoint.name, path, response.status_code, document)


# Unpaired surrogates cannot be percent-encoded as UTF-8: they arrive as invalid bytes, which the
# query string decoder replaces with U+FFFD; NUL arrives as itself.
QUERY_VALUES = st.one_of(HOSTILE_TEXT, EDGY_VALUES.map(lambda v: v if isinstance(v, str) else json.dumps(v)),
                         st.integers(MAX_INTEGER_DIGITS, 5000).map(lambda n: "9" * n))


def _as_text(value: Any) -> str:
    """A typed value as a query string carries it."""
    if isinstance(value, list):
        return ",".join(_as_text(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


@FUZZ
@given(data=st.data())
def test_hostile_query_strings_never_answer_5xx_and_nul_is_400_naming_the_parameter(
        demo: Demo, routes: Any, ids: list[str], data: st.DataObject) -> None:
    endpoint = data.draw(st.sampled_from(routes["query"]), label="endpoint")
    admin = data.draw(st.booleans(), label="admin")
    schema = next((schema for location, schema in endpoint.schemas if location == "query"), None)
    fields_by_name = {f.data_key or n: f for n, f in schema.fields.items()} if schema is not None else {}
    names = sorted(fields_by_name) or ["q"]
    name = data.draw(st.sampled_from(names), label="name")
    typed = _typed(fields_by_name[name], ids, 1).map(_as_text) if name in fields_by_name else QUERY_VALUES
    params = {**data.draw(st.dictionaries(st.sampled_from(names), QUERY_VALUES, max_size=3), label="query"),
              name: data.draw(st.one_of(typed, QUERY_VALUES), label="value")}
    query = "&".join(f"{quote(k)}={quote(v, safe='', errors='surrogatepass')}" for k, v in params.items())
    path = endpoint.rule.rule
    for argument in endpoint.rule.arguments:
        path = path.replace(f"<uuid:{argument}>", data.draw(st.sampled_from(ids), label=argument))
    path = path if "<" not in path else endpoint.path()
    response = demo.client(admin=admin).get(f"{path}?{query}")
    event(f"status {response.status_code}")
    assert response.status_code < 500, (endpoint.name, query[:300], response.get_data(as_text=True)[:500])
    with_nul = {k for k, v in params.items() if "\x00" in v}
    if len(path) + len(query) > MAX_URI_BYTES:  # not read at all: the length is checked first, whatever it holds
        assert response.status_code == 414, (endpoint.name, query[:300])
    elif with_nul:
        assert response.status_code == 400
        (where,) = response.json["errors"]
        assert where in with_nul


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                 HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["MessageSid", "MessageStatus", "From", "Body", "ErrorCode"]),
                            st.one_of(PLAIN_TEXT, HOSTILE_TEXT.filter(lambda s: "\x00" in s)), min_size=1))
def test_forms_with_nul_are_400_naming_the_field(demo: Demo, form: dict[str, str]) -> None:
    clean = {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in form.items()}
    before = demo.fingerprint()
    response = demo.client(admin=False).post("/api/v1/webhooks/twilio", data=clean,
                                             headers={"X-Twilio-Signature": "unverified"})
    assert response.status_code < 500
    with_nul = {k for k, v in clean.items() if "\x00" in v}
    if with_nul:
        assert response.status_code == 400
        (where,) = response.json["errors"]
        assert where in with_nul
    assert demo.fingerprint() == before
