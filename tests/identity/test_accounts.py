"""Registration, login, token rotation, suspension, rate limits and mass assignment."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import PASSWORD, client_for, make_account, unique_mobile
from tests.factories.identity import new_customer


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_customer_registers_and_logs_in(app: Any, engine: Engine) -> None:
    body = new_customer()
    client = client_for(app)
    created = client.post("/api/v1/auth/register", json=body)
    assert created.status_code == 202  # the same answer as for a taken email (test_login_oracles.py)
    assert "password" not in created.json and "encrypted_password" not in created.json
    user_id = count(engine, "SELECT id FROM auth.users WHERE email = :e", e=body["email"])
    assert count(engine, "SELECT count(*) FROM customers WHERE id = :id", id=user_id) == 1
    assert count(engine, "SELECT role FROM user_profiles WHERE id = :id", id=user_id) == "customer"
    stored = count(engine, "SELECT encrypted_password FROM auth.users WHERE id = :id", id=user_id)
    assert str(stored).startswith("$argon2id$")

    tokens = client.post("/api/v1/auth/login", json={"email": body["email"].upper(), "password": body["password"]})
    assert tokens.status_code == 200
    me = client_for(app).get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens.json['access_token']}"})
    assert me.status_code == 200
    assert me.json["email"] == body["email"] and me.json["role"] == "customer"
    assert "encrypted_password" not in me.get_data(as_text=True)


def test_wrong_password_is_401_and_says_no_more(app: Any) -> None:
    body = new_customer()
    client = client_for(app)
    client.post("/api/v1/auth/register", json=body)
    wrong = client.post("/api/v1/auth/login", json={"email": body["email"], "password": "not the password"})
    unknown = client.post("/api/v1/auth/login", json={"email": "nobody@example.test", "password": "whatever1234"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["detail"] == unknown.json["detail"]


def test_registering_as_super_admin_is_refused_and_writes_nothing(app: Any, engine: Engine) -> None:
    for extra in ({"role": "super_admin"}, {"status": "active"}, {"id": "00000000-0000-0000-0000-000000000001"}):
        body = {**new_customer(), **extra}
        response = client_for(app).post("/api/v1/auth/register", json=body)
        assert response.status_code == 422
        assert set(response.json["errors"]) == set(extra)
        assert count(engine, "SELECT count(*) FROM auth.users WHERE email = :e", e=body["email"]) == 0


def test_staff_cannot_set_fields_they_may_not(app: Any, engine: Engine) -> None:
    hr = make_account(engine, "hr_department")
    tag = secrets.token_hex(4)
    base = {"email": f"new.{tag}@example.test", "mobile": unique_mobile(),
            "password": PASSWORD, "name": "New Hire",
            "employee": {"department": "finance", "designation": "Analyst", "joining_date": "2026-12-01"}}
    as_admin = client_for(app, hr).post("/api/v1/users", json={**base, "role": "super_admin"})
    assert as_admin.status_code == 403
    with_status = client_for(app, hr).post("/api/v1/users", json={**base, "role": "finance_department",
                                                                  "status": "active"})
    assert with_status.status_code == 422 and "status" in with_status.json["errors"]
    assert count(engine, "SELECT count(*) FROM auth.users WHERE email = :e", e=base["email"]) == 0
    # HR may not create an account above itself (finance approves settlements): tests/identity/test_administration.py
    above = client_for(app, hr).post("/api/v1/users", json={**base, "role": "finance_department"})
    assert above.status_code == 403
    assert count(engine, "SELECT count(*) FROM auth.users WHERE email = :e", e=base["email"]) == 0
    created = client_for(app, hr).post("/api/v1/users", json={**base, "role": "staff_department"})
    assert created.status_code == 201


def test_vendor_cannot_place_a_therapist_at_another_vendor(app: Any, engine: Engine) -> None:
    vendor, other = make_account(engine, "vendor"), make_account(engine, "vendor")
    tag = secrets.token_hex(4)
    body = {"email": f"t.{tag}@example.test", "mobile": unique_mobile(), "password": PASSWORD,
            "name": "Meera", "specialization": ["SWD"]}
    refused = client_for(app, vendor).post("/api/v1/therapists", json={**body, "vendor_id": str(other.id)})
    assert refused.status_code == 422 and "vendor_id" in refused.json["errors"]
    created = client_for(app, vendor).post("/api/v1/therapists", json=body)
    assert created.status_code == 201
    assert created.json["vendor_id"] == str(vendor.id)


def test_refresh_token_rotates_and_reuse_revokes_the_family(app: Any) -> None:
    body = new_customer()
    client = client_for(app)
    client.post("/api/v1/auth/register", json=body)
    first = client.post("/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}).json
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]

    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})  # stolen copy
    assert replay.status_code == 401
    # The legitimate holder's newer token is revoked with the family.
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": second.json["refresh_token"]}).status_code == 401


def test_logout_revokes_the_refresh_token(app: Any) -> None:
    body = new_customer()
    client = client_for(app)
    client.post("/api/v1/auth/register", json=body)
    pair = client.post("/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}).json
    out = client_for(app).post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]},
                               headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert out.status_code == 204
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_suspended_user_is_refused_at_once(app: Any, engine: Engine) -> None:
    customer = make_account(engine, "customer")
    admin = make_account(engine, "admin")
    assert client_for(app, customer).get("/api/v1/bookings").status_code == 200
    suspended = client_for(app, admin).put(f"/api/v1/users/{customer.id}/status", json={"status": "suspended"})
    assert suspended.status_code == 200
    refused = client_for(app, customer).get("/api/v1/bookings")  # the same, still unexpired, token
    assert refused.status_code == 403
    assert "suspended" in refused.json["detail"]
    login = client_for(app).post("/api/v1/auth/login", json={"email": customer.email, "password": PASSWORD})
    assert login.status_code == 401  # as a wrong password: no oracle (test_login_oracles.py)


def test_login_is_rate_limited_per_account_and_address_with_retry_after(app: Any, app_factory: Any) -> None:
    limited_app = app_factory(OMBARO_LOGIN_LIMIT_PER_ACCOUNT="3")
    body = new_customer()
    client_for(limited_app).post("/api/v1/auth/register", json=body)
    attacker = f"10.98.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    statuses = [client_for(limited_app, address=attacker).post(
        "/api/v1/auth/login", json={"email": body["email"], "password": "wrong password"}).status_code
        for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    blocked = client_for(limited_app, address=attacker).post("/api/v1/auth/login", json={
        "email": body["email"], "password": body["password"]})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.content_type == "application/problem+json"
    # The owner, elsewhere, is not locked out by someone else's guesses.
    owner = client_for(limited_app).post("/api/v1/auth/login", json={"email": body["email"],
                                                                     "password": body["password"]})
    assert owner.status_code == 200


def test_registration_is_rate_limited_per_address(app_factory: Any) -> None:
    limited_app = app_factory(OMBARO_REGISTER_LIMIT_PER_ADDRESS="2")
    address = f"10.99.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    statuses = [client_for(limited_app, address=address).post("/api/v1/auth/register", json=new_customer())
                .status_code for _ in range(3)]
    assert statuses == [202, 202, 429]


def test_staff_changes_are_audited_and_the_log_cannot_be_edited(app: Any, engine: Engine) -> None:
    admin = make_account(engine, "admin")
    customer = make_account(engine, "customer")
    client_for(app, admin, address="10.1.2.3").put(f"/api/v1/users/{customer.id}/status", json={"status": "inactive"})
    with engine.connect() as conn:
        row = conn.execute(text("SELECT actor_role, method, path, status, ip FROM audit_log WHERE actor_id = :a"),
                           {"a": admin.id}).one()
    assert row == ("admin", "PUT", f"/api/v1/users/{customer.id}/status", 200, "10.1.2.3")
    import pytest
    from sqlalchemy.exc import DBAPIError

    for statement in ("UPDATE audit_log SET status = 500 WHERE actor_id = :a",
                      "DELETE FROM audit_log WHERE actor_id = :a"):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement), {"a": admin.id})


def test_a_staff_command_submission_is_audited_once_with_its_job(app: Any, engine: Engine) -> None:
    """The audit line of a submitted command is written in the job's transaction (one commit), by a
    role that may append to the log but not read it; a refused body is still audited after the answer."""
    hr = make_account(engine, "hr_department")
    client = client_for(app, hr, address="10.1.2.4")
    accepted = client.post("/api/v1/payroll/runs", json={"year": 2000, "month": 4, "dry_run": True},
                           headers={"Idempotency-Key": "audit-once"})
    assert accepted.status_code == 202, accepted.json
    replay = client.post("/api/v1/payroll/runs", json={"year": 2000, "month": 5, "dry_run": True},
                         headers={"Idempotency-Key": "audit-once"})
    assert replay.status_code == 422, replay.json
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT method, path, status, ip FROM audit_log WHERE actor_id = :a ORDER BY at, id"),
                            {"a": hr.id}).all()
        jobs = conn.execute(text("SELECT count(*) FROM jobs WHERE requested_by = :a"), {"a": hr.id}).scalar_one()
    assert jobs == 1
    assert sorted(rows, key=lambda r: r.status) == [("POST", "/api/v1/payroll/runs", 202, "10.1.2.4"),
                                                    ("POST", "/api/v1/payroll/runs", 422, "10.1.2.4")]
