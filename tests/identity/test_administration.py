"""Account administration cannot escalate: nobody creates, elevates or suspends an account above
themselves, HR administers employees only, every refusal is audited, and a maker cannot approve
through an account they created (docs/security.md)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.access.permissions import DEFAULT_MATRIX, default_grants, effective
from ombaro.access.roles import EXTERNAL_ROLES, ROLES, STAFF_ROLES
from tests.factories.accounts import PASSWORD, Account, client_for, make_account, unique_mobile

GRANTS = default_grants()


def holds_at_least(actor: str, target: str) -> bool:
    """The property every administration must keep: the target's permissions do not exceed the
    actor's (super admin above all; customers, vendors and therapists act on their own rows only)."""
    if actor == "super_admin":
        return True
    if target == "super_admin":
        return False
    if target in EXTERNAL_ROLES:
        return True
    mine, theirs = effective(GRANTS, actor), effective(GRANTS, target)
    return all(actions <= mine.get(module, frozenset()) for module, actions in theirs.items())


def new_account_body(role: str) -> dict[str, Any]:
    tag = secrets.token_hex(4)
    body: dict[str, Any] = {"email": f"{role}.{tag}@example.test", "mobile": unique_mobile(), "password": PASSWORD,
                            "name": f"New {role}", "role": role}
    if role == "vendor":
        body["vendor"] = {"business_name": f"Spa {tag}", "business_type": "spa",
                          "business_address": {"city": "Pune"}, "contact_person": "Owner",
                          "contact_mobile": unique_mobile(), "contact_email": f"spa.{tag}@example.test"}
    elif role in STAFF_ROLES:
        body["employee"] = {"department": "operations", "designation": "Officer", "joining_date": "2026-01-05"}
    return body


def audit_mark(engine: Engine) -> int:
    """The audit log's last id: a test counts only the lines written after it."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one())


def audited_refusals(engine: Engine, actor: uuid.UUID, path: str, *, prefix: bool = False,
                     since: int = 0) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT status, path, details FROM audit_log WHERE actor_id = :a AND path LIKE :p AND status = 403 "
            "AND id > :since ORDER BY id"),
            {"a": actor, "p": f"{path}%" if prefix else path, "since": since}).mappings()]


def test_the_default_matrix_is_what_the_database_holds(app: Any, role_accounts: dict[str, Account]) -> None:
    # The property below is computed from DEFAULT_MATRIX; the API decides from the table.
    for role in DEFAULT_MATRIX:
        if role == "super_admin":
            continue
        shown = client_for(app, role_accounts["super_admin"]).get(f"/api/v1/access/permissions/{role}").json
        assert {m: set(a) for m, a in shown["effective"].items()} == \
            {m: set(a) for m, a in effective(GRANTS, role).items()}, role


def test_no_role_creates_an_account_above_itself(app: Any, engine: Engine,
                                                 role_accounts: dict[str, Account]) -> None:
    created: dict[tuple[str, str], bool] = {}
    mark = audit_mark(engine)
    for actor in ROLES:
        client = client_for(app, role_accounts[actor])
        for target in ROLES:
            if target == "customer":  # customers register themselves
                continue
            body = new_account_body(target)
            response = client.post("/api/v1/users", json=body)
            assert response.status_code in (201, 403), (actor, target, response.json)
            created[(actor, target)] = response.status_code == 201
            with engine.connect() as conn:
                exists = conn.execute(text("SELECT count(*) FROM auth.users WHERE email = :e"),
                                      {"e": body["email"]}).scalar_one()
            assert exists == created[(actor, target)], (actor, target)
            if response.status_code == 201:
                assert holds_at_least(actor, target), f"a {actor} created a {target} account"
                assert actor == "super_admin" or target in STAFF_ROLES, f"a {actor} created a {target} account"
                with engine.connect() as conn:
                    creator = conn.execute(text("SELECT created_by FROM user_profiles WHERE id = :i"),
                                           {"i": response.json["id"]}).scalar_one()
                assert creator == role_accounts[actor].id
    # What may happen does: the super admin creates every role; HR its own level and below.
    assert all(created[("super_admin", t)] for t in ROLES if t != "customer")
    assert created[("hr_department", "staff_department")] and created[("hr_department", "employee")]
    assert created[("hr_department", "hr_department")]
    for target in ("finance_department", "accounts_department", "directors", "admin", "it_department", "vendor",
                   "therapist", "super_admin"):
        assert not created[("hr_department", target)], target
    # Every refusal is in the audit log, with what was asked.
    for actor in ROLES:
        refusals = audited_refusals(engine, role_accounts[actor].id, "/api/v1/users", since=mark)
        expected = sum(1 for (a, _), ok in created.items() if a == actor and not ok)
        assert len(refusals) == expected, actor
    hr_refusals = audited_refusals(engine, role_accounts["hr_department"].id, "/api/v1/users", since=mark)
    finance = [r for r in hr_refusals if r["details"].get("target", {}).get("role") == "finance_department"]
    assert finance and "finance_department" in finance[0]["details"]["refused"]


@pytest.fixture(scope="module")
def targets(engine: Engine) -> dict[str, Account]:
    """A fresh account per role to suspend (not the shared role_accounts: suspension revokes)."""
    made = {role: make_account(engine, role) for role in ROLES if role != "therapist"}
    made["therapist"] = make_account(engine, "therapist", vendor_id=made["vendor"].id)
    return made


def test_no_role_suspends_or_reactivates_an_account_above_itself(
        app: Any, engine: Engine, role_accounts: dict[str, Account], targets: dict[str, Account]) -> None:
    for actor in ROLES:
        client = client_for(app, role_accounts[actor])
        for target in ROLES:
            victim = targets[target]
            for status in ("suspended", "active"):
                if status == "active":
                    with engine.begin() as conn:
                        conn.execute(text("UPDATE user_profiles SET status = 'suspended' WHERE id = :i"),
                                     {"i": victim.id})
                response = client.put(f"/api/v1/users/{victim.id}/status", json={"status": status})
                assert response.status_code in (200, 403), (actor, target, response.json)
                with engine.begin() as conn:
                    now = conn.execute(text("SELECT status FROM user_profiles WHERE id = :i"),
                                       {"i": victim.id}).scalar_one()
                    conn.execute(text("UPDATE user_profiles SET status = 'active' WHERE id = :i"), {"i": victim.id})
                if response.status_code == 200:
                    assert now == status
                    assert holds_at_least(actor, target), f"a {actor} set a {target} account {status}"
                    assert actor != "hr_department" or target in STAFF_ROLES, f"HR set a {target} account {status}"
                else:
                    assert now == ("active" if status == "suspended" else "suspended"), (actor, target)
    # The cases of the issue: HR suspended vendors, customers and a director.
    hr = client_for(app, role_accounts["hr_department"])
    for target in ("vendor", "customer", "directors", "therapist", "finance_department", "super_admin"):
        refused = hr.put(f"/api/v1/users/{targets[target].id}/status", json={"status": "suspended"})
        assert refused.status_code == 403, target
        assert refused.content_type == "application/problem+json"
    assert hr.put(f"/api/v1/users/{targets['staff_department'].id}/status",
                  json={"status": "suspended"}).status_code == 200
    admin = client_for(app, role_accounts["admin"])
    assert admin.put(f"/api/v1/users/{targets['customer'].id}/status", json={"status": "suspended"}).status_code == 200
    assert admin.put(f"/api/v1/users/{targets['directors'].id}/status", json={"status": "suspended"}).status_code == 403
    refusals = audited_refusals(engine, role_accounts["hr_department"].id, f"/api/v1/users/{targets['vendor'].id}",
                                prefix=True)
    assert refusals and refusals[0]["details"]["target"]["role"] == "vendor"


def test_nobody_suspends_their_own_account(app: Any, engine: Engine) -> None:
    hr = make_account(engine, "hr_department")
    refused = client_for(app, hr).put(f"/api/v1/users/{hr.id}/status", json={"status": "suspended"})
    assert refused.status_code == 403


def test_only_the_super_admin_edits_the_matrix_even_when_granted(
        app: Any, engine: Engine, role_accounts: dict[str, Account]) -> None:
    """Elevation through the matrix: every other role is refused for every role, even once the
    matrix grants it access:update (which only the super admin can give)."""
    from ombaro.access.permissions import GRANTS_CACHE

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO role_permissions (role_id, module_id, permissions) VALUES "
                          "('it_department', 'access', ARRAY['read', 'update']) ON CONFLICT "
                          "(role_id, module_id, sub_module_id) DO UPDATE SET permissions = EXCLUDED.permissions"))
    GRANTS_CACHE.invalidate()
    mark = audit_mark(engine)
    try:
        for actor in ROLES:
            client = client_for(app, role_accounts[actor])
            for target in ROLES:
                if actor == "super_admin":
                    continue
                before = client_for(app, role_accounts["super_admin"]).get(f"/api/v1/access/permissions/{target}").json
                response = client.put(f"/api/v1/access/permissions/{target}",
                                      json={"modules": {**before["direct"], "settlements": ["approve"]}})
                assert response.status_code == 403, (actor, target)
                after = client_for(app, role_accounts["super_admin"]).get(f"/api/v1/access/permissions/{target}").json
                assert after["direct"] == before["direct"]
        it_refusals = audited_refusals(engine, role_accounts["it_department"].id, "/api/v1/access/permissions",
                                       prefix=True, since=mark)
        assert len(it_refusals) == len(ROLES)
        assert "super admin" in it_refusals[0]["details"]["refused"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE role_permissions SET permissions = ARRAY['read'] "
                              "WHERE role_id = 'it_department' AND module_id = 'access'"))
        GRANTS_CACHE.invalidate()


# --- maker-checker through made-up colleagues ------------------------------------------------------


def login(app: Any, email: str) -> Any:
    pair = client_for(app).post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200, pair.json
    client = client_for(app)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {pair.json['access_token']}"
    return client


def create_through_api(app: Any, creator: Any, role: str) -> str:
    body = new_account_body(role)
    response = creator.post("/api/v1/users", json=body)
    assert response.status_code == 201, response.json
    return str(body["email"])


def pending_settlement(engine: Engine, maker: uuid.UUID) -> uuid.UUID:
    vendor = make_account(engine, "vendor")
    with engine.begin() as conn:
        settlement = conn.execute(text(
            "INSERT INTO payment_settlements (vendor_id, settlement_period_start, settlement_period_end, "
            "total_bookings, gross_amount, commission_amount, net_settlement_amount) VALUES (:v, current_date - 13, "
            "current_date - 7, 1, :g, :c, :n) RETURNING id"),
            {"v": vendor.id, "g": Decimal("1000.00"), "c": Decimal("150.00"), "n": Decimal("850.00")}).scalar_one()
        conn.execute(text("INSERT INTO settlement_approvals (settlement_id, requested_by) VALUES (:s, :m)"),
                     {"s": settlement, "m": maker})
    return settlement


def test_hr_cannot_make_a_finance_officer_to_approve_settlements(app: Any, engine: Engine) -> None:
    hr = make_account(engine, "hr_department")
    refused = client_for(app, hr).post("/api/v1/users", json=new_account_body("finance_department"))
    assert refused.status_code == 403
    assert "finance_department" in refused.json["detail"]


def test_a_maker_cannot_approve_through_an_account_they_created_directly_or_by_a_chain(
        app: Any, engine: Engine) -> None:
    maker = make_account(engine, "super_admin")
    maker_client = client_for(app, maker)
    settlement = pending_settlement(engine, maker.id)

    puppet = login(app, create_through_api(app, maker_client, "finance_department"))
    direct = puppet.post(f"/api/v1/settlements/{settlement}/approve")
    assert direct.status_code == 403, direct.json
    assert "created" in direct.json["detail"]

    # A chain of puppets: the maker makes a super admin, who makes the finance officer.
    second = login(app, create_through_api(app, maker_client, "super_admin"))
    chained = login(app, create_through_api(app, second, "finance_department"))
    assert chained.post(f"/api/v1/settlements/{settlement}/approve").status_code == 403
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM payment_settlements WHERE id = :s"),
                            {"s": settlement}).scalar_one() == "pending"

    # A finance officer the maker did not make approves.
    independent = make_account(engine, "finance_department")
    approved = client_for(app, independent).post(f"/api/v1/settlements/{settlement}/approve")
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved"


def test_payroll_is_not_approved_through_an_hr_account_its_maker_created(app: Any, engine: Engine) -> None:
    maker = make_account(engine, "hr_department")
    puppet = login(app, create_through_api(app, client_for(app, maker), "hr_department"))
    independent = make_account(engine, "hr_department")
    year, month = 2100 + secrets.randbelow(800), 1 + secrets.randbelow(12)
    with engine.begin() as conn:
        run_id = conn.execute(text(
            "INSERT INTO payroll_runs (year, month, status, requested_by, started_at, finished_at) "
            "VALUES (:y, :m, 'computed', :r, now(), now()) RETURNING id"),
            {"y": year, "m": month, "r": maker.id}).scalar_one()
    refused = puppet.post(f"/api/v1/payroll/runs/{run_id}/approve", json={})
    assert refused.status_code == 403, refused.json
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM payroll_runs WHERE id = :r"), {"r": run_id}).scalar_one() \
            == "computed"
    approved = client_for(app, independent).post(f"/api/v1/payroll/runs/{run_id}/approve", json={})
    assert approved.status_code == 200, approved.json


def test_employee_codes_keep_counting_past_emp9999(app: Any, engine: Engine) -> None:
    """A text max() sorted EMP9999 above EMP10000 and every later staff account failed with 500."""
    with engine.begin() as conn:
        taken = conn.execute(text("SELECT last_value FROM employee_code_seq")).scalar_one()
    admin = make_account(engine, "super_admin")
    # Codes written by other means ahead of the sequence (the demo data writes EMP9999).
    with engine.begin() as conn:
        for number in (taken + 1, taken + 2, 9999):
            user = make_account(engine, "employee")
            conn.execute(text("UPDATE employees SET employee_code = :c WHERE id = :i AND NOT EXISTS "
                              "(SELECT 1 FROM employees WHERE employee_code = :c)"),
                         {"c": f"EMP{number:04d}", "i": user.id})
    codes = []
    for _ in range(3):
        made = client_for(app, admin).post("/api/v1/users", json=new_account_body("staff_department"))
        assert made.status_code == 201, made.json
        with engine.connect() as conn:
            codes.append(conn.execute(text("SELECT employee_code FROM employees WHERE id = :i"),
                                      {"i": made.json["id"]}).scalar_one())
    assert len(set(codes)) == 3
    assert f"EMP{taken + 1:04d}" not in codes and f"EMP{taken + 2:04d}" not in codes
    with engine.begin() as conn:  # past 9999: EMP10000 onwards, each once
        conn.execute(text("SELECT setval('employee_code_seq', 9998)"))
    for _ in range(2):
        made = client_for(app, admin).post("/api/v1/users", json=new_account_body("employee"))
        assert made.status_code == 201, made.json
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM employees WHERE employee_code IN ('EMP10000', 'EMP10001')"))\
            .scalar_one() == 2


def test_the_sequence_starts_above_existing_codes(make_database: Any) -> None:
    """Migration 0010 on a database that already has EMP9999 and EMP10000."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from tests.services import migrate

    url = make_database()
    migrate(url, "0008")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for code in ("EMP9999", "EMP10000", "E-legacy"):
            user = conn.execute(text("INSERT INTO auth.users (email, encrypted_password) VALUES (:e, '!') "
                                     "RETURNING id"), {"e": f"{code}@example.test"}).scalar_one()
            conn.execute(text("INSERT INTO employees (id, employee_code, name, email, mobile, department, designation, "
                              "joining_date) VALUES (:i, :c, 'X', :e, :m, 'ops', 'Officer', :d)"),
                         {"i": user, "c": code, "e": f"{code}@example.test", "m": unique_mobile(),
                          "d": dt.date(2025, 1, 1)})
    migrate(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT nextval('employee_code_seq')")).scalar_one() == 10001
    engine.dispose()


def test_the_audit_log_lists_its_newest_entries_first(app: Any, role_accounts: dict[str, Account]) -> None:
    hr = role_accounts["hr_department"]
    assert client_for(app, hr).post("/api/v1/users", json=new_account_body("super_admin")).status_code == 403
    listed = client_for(app, role_accounts["it_department"]).get("/api/v1/audit?limit=3")
    assert listed.status_code == 200 and 1 <= len(listed.json) <= 3
    newest = listed.json[0]
    assert (newest["actor_id"], newest["method"], newest["path"], newest["status"]) == \
        (str(hr.id), "POST", "/api/v1/users", 403)
    assert [e["at"] for e in listed.json] == sorted((e["at"] for e in listed.json), reverse=True)
