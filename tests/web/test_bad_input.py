"""Each input the trust review saw answered with a 500 (issue 12) is a 4xx problem+json naming the
field, and writes nothing; database integrity and connection errors are mapped once; 405 says
what is allowed. Against the demo marketplace (tests/web/conftest.py)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Blueprint
from sqlalchemy import text

from tests.web.helpers import Demo

pytestmark = pytest.mark.db

PROBLEM = "application/problem+json"
DEEP = "[" * 40 + "]" * 40
VERY_DEEP = "[" * 200_000 + "]" * 200_000
HUGE_INTEGER = "1" + "0" * 5000


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {employee}, {vendor}, {random} are filled from the demo data
    status: int
    field: str  # the key the problem's `errors` must name
    json: Any = None
    raw: str | bytes | None = None  # sent as the JSON body as is (NaN, 5000-digit integers, bad UTF-8)
    form: dict[str, str] | None = None
    admin: bool = True
    headers: dict[str, str] = field(default_factory=dict)


def _campaign(budget: Any) -> dict[str, Any]:
    return {"name": "Monsoon offer", "type": "email", "content": {"email": {"subject": "Hello", "body": "Hi $name"}},
            "budget": budget}


CASES = [
    # Without authentication: NUL, lone surrogates, nesting, integer size, invalid UTF-8.
    Case("login NUL in email", "POST", "/api/v1/auth/login", 400, "/email",
         json={"email": "super.admin\u0000@ombaro.test", "password": "ombaro-demo-2026"}, admin=False),
    Case("login NUL in a member name", "POST", "/api/v1/auth/login", 400, "/pass?word",
         raw='{"email": "a@b.test", "pass\\u0000word": "x"}', admin=False),
    Case("register lone surrogate", "POST", "/api/v1/auth/register", 400, "/name",
         raw='{"email": "new@example.test", "mobile": "+919876543210", "password": "a long password", '
             '"name": "\\ud800"}', admin=False),
    Case("register deeply nested", "POST", "/api/v1/auth/register", 400,
         "/name" + "/0" * 32, raw='{"name": ' + DEEP + "}", admin=False),
    Case("login nested beyond the decoder's own limit", "POST", "/api/v1/auth/login", 400, "_body",
         raw=VERY_DEEP, admin=False),
    Case("register 5,000-digit integer", "POST", "/api/v1/auth/register", 400, "/mobile",
         raw='{"mobile": ' + HUGE_INTEGER + "}", admin=False),
    Case("login body not UTF-8", "POST", "/api/v1/auth/login", 400, "_body",
         raw=b'{"email": "\xff\xfe"}', admin=False),
    Case("NUL in a query string", "GET", "/api/v1/jobs?kind=a%00b", 400, "kind"),
    Case("NUL in a form", "POST", "/api/v1/webhooks/twilio", 400, "MessageStatus",
         form={"MessageSid": "SM1", "MessageStatus": "deliv\u0000ered"}, admin=False),
    # Numbers: overflow, non-finite, too many places.
    Case("campaign budget 1e20", "POST", "/api/v1/campaigns", 422, "budget", json=_campaign(1e20)),
    Case("campaign budget NaN", "POST", "/api/v1/campaigns", 400, "/budget",
         raw='{"name": "x", "type": "email", "content": {}, "budget": NaN}'),
    Case("campaign budget Infinity", "POST", "/api/v1/campaigns", 400, "/budget",
         raw='{"name": "x", "type": "email", "content": {}, "budget": -Infinity}'),
    Case("campaign budget in tenths of paise", "POST", "/api/v1/campaigns", 422, "budget",
         json=_campaign("100.005")),
    Case("outbox before_id 1e20", "GET", "/api/v1/outbox?before_id=1e20", 422, "before_id"),
    Case("outbox before_id beyond bigint", "GET", "/api/v1/outbox?before_id=100000000000000000000", 422,
         "before_id"),
    Case("jobs limit fractional", "GET", "/api/v1/jobs?limit=1.5", 422, "limit"),
    Case("payroll adjustment 1e19", "POST", "/api/v1/payroll/adjustments", 422, "amount",
         json={"employee_id": "{employee}", "year": 2026, "month": 1, "kind": "bonus", "amount": 1e19}),
    Case("payroll adjustment 1e309", "POST", "/api/v1/payroll/adjustments", 400, "/amount",
         raw='{"employee_id": "{employee}", "year": 2026, "month": 1, "kind": "bonus", "amount": 1e309}'),
    Case("compensation basic 1e19", "POST", "/api/v1/payroll/compensation", 422, "basic",
         json={"employee_id": "{employee}", "effective_from": "2026-01-01", "basic": 1e19}),
    Case("compensation 1e19 as a string", "POST", "/api/v1/payroll/compensation", 422, "hra",
         json={"employee_id": "{employee}", "effective_from": "2026-01-01", "basic": 1000, "hra": "1e19"}),
    Case("settlement adjustment beyond the bound", "POST", "/api/v1/settlements/adjustments", 422, "amount",
         json={"vendor_id": "{vendor}", "amount": "-10000000.01", "reason": "test"}),
    Case("booking quantity 1e20", "POST", "/api/v1/bookings", 422, "items",
         json={"items": [{"quantity": 1e20}]}),
    # Booleans are strict: 0 is not false, "false" is not false in JSON.
    Case("settlement run dry_run 0", "POST", "/api/v1/settlements/runs", 422, "dry_run",
         json={"period_start": "2026-01-05", "period_end": "2026-01-11", "dry_run": 0}),
    Case("payroll run dry_run \"false\"", "POST", "/api/v1/payroll/runs", 422, "dry_run",
         json={"year": 2026, "month": 1, "dry_run": "false"}),
    Case("query boolean yes", "GET", "/api/v1/settlements/adjustments?pending=yes", 422, "pending"),
    # A foreign key to a row that does not exist.
    Case("compensation of an employee that does not exist", "POST", "/api/v1/payroll/compensation", 422,
         "employee_id", json={"employee_id": "{random}", "effective_from": "2026-01-01", "basic": "1000.00"}),
    Case("payout account of a vendor that does not exist", "PUT", "/api/v1/settlements/payout-accounts/{random}",
         404, "vendor_id", json={"account_id": "acc_ABCDEF123456"}),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in ids.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.fixture(scope="module")
def ids(demo: Demo) -> dict[str, str]:
    return {"employee": str(demo.scalar("SELECT id FROM employees WHERE status = 'active' "
                                        "ORDER BY employee_code LIMIT 1")),
            "vendor": str(demo.scalar("SELECT id FROM vendors ORDER BY id LIMIT 1")),
            "random": str(uuid.uuid4())}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_named_bad_input_is_a_4xx_problem_naming_the_field_and_writes_nothing(demo: Demo, ids: dict[str, str],
                                                                               case: Case) -> None:
    before = demo.fingerprint()
    kwargs: dict[str, Any] = {"headers": case.headers}
    if case.json is not None:
        kwargs["json"] = _fill(case.json, ids)
    elif case.raw is not None:
        kwargs["data"] = _fill(case.raw, ids) if isinstance(case.raw, str) else case.raw
        kwargs["content_type"] = "application/json"
    elif case.form is not None:
        kwargs["data"] = case.form
        kwargs["headers"] = {**case.headers, "X-Twilio-Signature": "unverified"}
    response = demo.client(admin=case.admin).open(_fill(case.path, ids), method=case.method, **kwargs)
    assert response.status_code == case.status, response.get_data(as_text=True)[:2000]
    assert response.content_type == PROBLEM
    assert case.field in response.json["errors"], response.json
    assert demo.fingerprint() == before


def test_a_refused_nul_never_reaches_the_database_or_the_logs_as_an_error(demo: Demo, caplog: Any) -> None:
    response = demo.client().post("/api/v1/campaigns", json=_campaign("10.00") | {"name": "bad\u0000name"})
    assert response.status_code == 400
    assert response.json["errors"] == {"/name": ["the string contains a NUL character"]}
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_dry_run_true_and_query_forms_of_booleans_are_accepted(demo: Demo) -> None:
    client = demo.client()
    for value in ("true", "1", "false", "0", "TRUE"):
        response = client.get(f"/api/v1/settlements/adjustments?pending={value}")
        assert response.status_code == 200, (value, response.json)
    response = client.post("/api/v1/settlements/runs", json={"period_start": "2026-01-05",
                                                             "period_end": "2026-01-11", "dry_run": True})
    assert response.status_code in (200, 202), response.json


def test_money_is_loaded_to_the_paisa_and_dumped_as_a_string(demo: Demo, ids: dict[str, str]) -> None:
    response = demo.client().post("/api/v1/settlements/adjustments",
                                  json={"vendor_id": ids["vendor"], "amount": 12.5, "reason": "money check"})
    assert response.status_code == 201, response.json
    assert response.json["amount"] == "12.50"
    stored = demo.scalar("SELECT amount FROM settlement_adjustments WHERE id = :id", id=response.json["id"])
    assert str(stored) == "12.50"


def test_method_not_allowed_carries_allow(demo: Demo) -> None:
    response = demo.client().delete("/api/v1/jobs")
    assert response.status_code == 405
    assert response.content_type == PROBLEM
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}
    assert "DELETE" not in response.headers["Allow"]


# -- integrity errors, mapped once ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def integrity_app(demo: Demo) -> Any:
    """The demo app with one test route that runs a statement against the real schema, so each kind
    of integrity error comes from PostgreSQL itself, through psycopg, to web/errors.py."""
    from web import create_app
    from web.extension import Ombaro

    app = create_app({"DATABASE_URL": demo.url})
    probe = Blueprint("integrity_probe", __name__)
    statements = {
        "unique": "INSERT INTO holidays (id, date, name, kind) VALUES (gen_random_uuid(), DATE '2031-01-01', 'a', "
                  "'gazetted'), (gen_random_uuid(), DATE '2031-01-01', 'b', 'gazetted')",
        "foreign_key": "INSERT INTO vendor_payout_accounts (id, vendor_id, account_id, provider) "
                       "VALUES (gen_random_uuid(), CAST(:path_id AS uuid), 'acc_TEST000001', 'razorpay')",
        "foreign_key_in_body": "INSERT INTO vendor_payout_accounts (id, vendor_id, account_id, provider) "
                               "VALUES (gen_random_uuid(), gen_random_uuid(), 'acc_TEST000001', 'razorpay')",
        "not_null": "INSERT INTO holidays (id, date, name, kind) VALUES (gen_random_uuid(), NULL, 'x', 'gazetted')",
        "check": "INSERT INTO holidays (id, date, name, kind) VALUES (gen_random_uuid(), DATE '2031-01-01', 'x', "
                 "'no-such-kind')",
    }

    @probe.post("/test/integrity/<kind>/<path_id>")
    def provoke(kind: str, path_id: str) -> Any:
        with Ombaro.get().sessions() as session, session.begin():
            session.execute(text(statements[kind]), {"path_id": path_id})
        return {}, 200

    app.register_blueprint(probe)
    return app


@pytest.mark.parametrize(("kind", "status", "field"), [("unique", 409, "date"), ("not_null", 422, "date"),
                                                      ("check", 422, "kind"),
                                                      ("foreign_key_in_body", 422, "vendor_id")])
def test_integrity_errors_are_mapped_once_to_4xx_problems(demo: Demo, integrity_app: Any, kind: str,
                                                          status: int, field: str) -> None:
    before = demo.fingerprint()
    response = integrity_app.test_client().post(f"/test/integrity/{kind}/{uuid.uuid4()}")
    assert response.status_code == status, response.json
    assert response.content_type == PROBLEM
    assert field in response.json["errors"], response.json
    assert demo.fingerprint() == before


def test_a_foreign_key_named_by_the_path_is_404(demo: Demo, integrity_app: Any) -> None:
    missing = uuid.uuid4()
    response = integrity_app.test_client().post(f"/test/integrity/foreign_key/{missing}")
    assert response.status_code == 404, response.json
    assert response.json["errors"] == {"vendor_id": ["does not exist"]}


# -- the database is down ---------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("path", "admin"), [("/api/v1/auth/login", False), ("/api/v1/jobs", True)])
def test_a_request_during_a_database_outage_is_503_with_retry_after(demo: Demo, redis_url: str, path: str,
                                                                    admin: bool) -> None:
    from web import create_app

    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/ombaro",
                      "REDIS_URL": redis_url})
    client = app.test_client()
    if admin:
        response = client.get(path, headers={"Authorization": f"Bearer {demo.admin_token}"})
    else:
        response = client.post(path, json={"email": "someone@example.test", "password": "a long password"},
                               environ_base={"REMOTE_ADDR": "10.200.0.1"})
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    assert response.content_type == PROBLEM
    assert int(response.headers["Retry-After"]) > 0


def test_a_login_while_redis_is_unreachable_is_503_with_retry_after(demo: Demo) -> None:
    """The login and registration limits live in Redis: without it they cannot be counted."""
    from web import create_app

    app = create_app({"DATABASE_URL": demo.url, "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"})
    response = app.test_client().post("/api/v1/auth/login", json={"email": "super.admin@ombaro.test",
                                                                  "password": "ombaro-demo-2026"})
    assert response.status_code == 503
    assert response.content_type == PROBLEM
    assert int(response.headers["Retry-After"]) > 0


def test_a_uri_longer_than_the_server_reads_is_a_414_problem_and_changes_nothing(app: Any) -> None:
    from web.sanitize import MAX_URI_BYTES

    client = app.test_client()
    long_kind = "x" * (MAX_URI_BYTES + 1)
    answer = client.get(f"/api/v1/jobs?kind={long_kind}")
    assert answer.status_code == 414
    assert answer.mimetype == "application/problem+json"
    assert str(MAX_URI_BYTES) in answer.get_json()["detail"]
    assert client.get(f"/api/v1/jobs?kind={'x' * (MAX_URI_BYTES - 100)}").status_code == 401  # read, then refused
