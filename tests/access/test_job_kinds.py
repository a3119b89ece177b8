"""The job log and the schedules by kind (docs/security.md): for every role and every job kind, a
job is listed, shown and re-run, and a schedule is listed, run and edited, exactly when the role holds
the permission of the kind (ombaro.access.permissions.job_permission) as the grants table says.
Outside parties (customers, vendors, therapists) see only the jobs they requested themselves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.access import permissions
from ombaro.access.roles import EXTERNAL_ROLES, ROLES, holds
from tests.factories.accounts import Account, client_for, make_account

pytestmark = pytest.mark.db

SECRET = "Asha Rao, EMP-0042, gross 61000.00, net 52210.00"  # what a pay run's result looks like


def _migration_0009() -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "migrations" / "versions" / "0009_job_kind_policies.py"
    spec = importlib.util.spec_from_file_location("ombaro_migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_kinds() -> list[str]:
    import importlib

    from workers.app import celery, task_modules

    for module in task_modules():
        importlib.import_module(module)
    return sorted(name for name in celery.tasks if not name.startswith("celery."))


@pytest.fixture(scope="module")
def kinds(service_env: dict[str, str]) -> list[str]:
    return registered_kinds()


@pytest.fixture(scope="module")
def accounts(engine: Engine) -> dict[str, Account]:
    vendor = make_account(engine, "vendor")
    made = {role: make_account(engine, role) for role in ROLES if role not in ("vendor", "therapist")}
    return {**made, "vendor": vendor, "therapist": make_account(engine, "therapist", vendor_id=vendor.id)}


def grants(engine: Engine) -> dict[str, dict[str, frozenset[str]]]:
    with Session(engine) as session:
        return permissions.load_grants(session)


def may(table: dict[str, dict[str, frozenset[str]]], role: str, module: str, action: str) -> bool:
    return permissions.allowed_by(table, role, module, action)


def sees_kind(table: dict[str, dict[str, frozenset[str]]], role: str, kind: str) -> bool:
    return role not in EXTERNAL_ROLES and may(table, role, *permissions.job_permission(kind))


@pytest.fixture
def failed_jobs(engine: Engine, clean_jobs: None, kinds: list[str]) -> dict[str, str]:
    """One failed job of every kind, started by the system, its params and result holding a secret."""
    made: dict[str, str] = {}
    with engine.begin() as conn:
        for kind in kinds:
            made[kind] = str(conn.execute(text(
                "INSERT INTO jobs (kind, status, attempts, params, result, error) VALUES (:kind, 'failed', 3, "
                "CAST(:params AS jsonb), CAST(:result AS jsonb), CAST(:error AS jsonb)) RETURNING id"), {
                "kind": kind, "params": json.dumps({"note": SECRET}), "result": json.dumps({"changes": [SECRET]}),
                "error": json.dumps({"type": "X", "message": "boom", "trace": "Traceback ...", "attempt": 3}),
            }).scalar_one())
    return made


def _refail(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'failed', attempts = 3, result = CAST(:result AS jsonb), "
                          "error = '{\"type\": \"X\", \"message\": \"boom\", \"trace\": \"T\"}' "
                          "WHERE schedule_id IS NULL"), {"result": json.dumps({"changes": [SECRET]})})


def test_every_kind_a_worker_runs_declares_its_permission_and_the_database_agrees(
        engine: Engine, kinds: list[str]) -> None:
    assert set(kinds) == set(permissions.JOB_KIND_PERMISSIONS), "declare new kinds in JOB_KIND_PERMISSIONS"
    migration = _migration_0009()
    declared = {kind: f"{module}:{action}" for kind, (module, action) in permissions.JOB_KIND_PERMISSIONS.items()}
    assert {k: v for k, v in declared.items() if k in migration.JOB_KIND_PERMISSIONS} == migration.JOB_KIND_PERMISSIONS
    # A kind declared after 0009 (system.housekeeping, 0022) holds the permission the database gives a
    # kind its table does not list (checked against auth.job_permission below too), or needs a migration.
    for kind in declared.keys() - migration.JOB_KIND_PERMISSIONS.keys():
        assert declared[kind] == f"{permissions.module_of_kind(kind)}:create", kind
    held = {r: tuple(sorted(holds(r) - {r})) for r in ROLES if holds(r) - {r} and r != "super_admin"}
    assert held == migration.HOLDS  # (the super admin may do everything)
    with engine.connect() as conn:
        for kind in [*kinds, "settlements.someday", "nothing.known"]:
            in_db = conn.execute(text("SELECT auth.job_permission(:k)"), {"k": kind}).scalar_one()
            assert in_db == ":".join(permissions.job_permission(kind)), kind


def test_job_log_list_get_and_retry_by_role_and_kind(
        app: Any, engine: Engine, accounts: dict[str, Account], failed_jobs: dict[str, str]) -> None:
    table = grants(engine)
    wrong: list[tuple[str, str, str, Any]] = []
    for role, account in accounts.items():
        client = client_for(app, account)
        listed = client.get("/api/v1/jobs?limit=500")
        assert listed.status_code == 200, (role, listed.json)
        shown = {job["kind"]: job for job in listed.json}
        for kind, job_id in failed_jobs.items():
            expected = sees_kind(table, role, kind)
            if (kind in shown) != expected:
                wrong.append((role, kind, "list", kind in shown))
            got = client.get(f"/api/v1/jobs/{job_id}")
            if got.status_code != (200 if expected else 404):
                wrong.append((role, kind, "get", got.status_code))
            elif expected:
                assert got.json["result"] == {"changes": [SECRET]} and "trace" not in got.json["error"]
            else:
                assert SECRET not in got.get_data(as_text=True)
            retried = client.post(f"/api/v1/jobs/{job_id}/retry")
            if retried.status_code != (202 if expected else 404):
                wrong.append((role, kind, "retry", retried.status_code))
        _refail(engine)
    assert wrong == []
    # The cases, named: marketing does not see payroll, customer care no settlement.
    marketing = client_for(app, accounts["marketing_department"])
    assert marketing.get("/api/v1/jobs?kind=payroll.run").json == []
    care = client_for(app, accounts["customer_care"])
    assert care.get("/api/v1/jobs?kind=settlements.run").json == []


def test_a_requester_sees_their_own_job_but_may_not_re_run_a_kind_they_cannot_start(
        app: Any, engine: Engine, accounts: dict[str, Account], clean_jobs: None) -> None:
    customer = accounts["customer"]
    with engine.begin() as conn:
        job_id = str(conn.execute(text(
            "INSERT INTO jobs (kind, status, attempts, requested_by) VALUES ('dispatch.booking', 'failed', 3, :me) "
            "RETURNING id"), {"me": customer.id}).scalar_one())
    client = client_for(app, customer)
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert [j["id"] for j in client.get("/api/v1/jobs").json] == [job_id]
    refused = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert refused.status_code == 403 and "dispatch:create" in refused.json["detail"]
    assert refused.content_type == "application/problem+json"
    other = client_for(app, make_account(engine, "customer"))
    assert other.get(f"/api/v1/jobs/{job_id}").status_code == 404


@pytest.fixture
def matrix_schedules(engine: Engine, clean_jobs: None, kinds: list[str]) -> Iterator[dict[str, str]]:
    """A disabled schedule per kind (the scheduler never fires a disabled one), with params its
    command accepts (the declaration's example): running it submits through the registry."""
    with engine.begin() as conn:
        made = {kind: str(conn.execute(text(
            "INSERT INTO schedules (name, kind, params, interval_seconds, enabled) "
            "VALUES (:name, :kind, CAST(:params AS jsonb), 3600, false) RETURNING id"),
            {"name": f"matrix.{kind}", "kind": kind,
             "params": json.dumps(dict(commands.command_of(kind).example))}).scalar_one()) for kind in kinds}
    yield made
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE schedule_id IN "
                          "(SELECT id FROM schedules WHERE name LIKE 'matrix.%')"))
        conn.execute(text("DELETE FROM schedules WHERE name LIKE 'matrix.%'"))


@pytest.fixture
def schedules_for_all_staff(engine: Engine) -> Iterator[None]:
    """schedules:read and update for every role, so the kind alone decides (restored after)."""
    with engine.begin() as conn:
        saved = conn.execute(text(
            "SELECT role_id, permissions FROM role_permissions WHERE module_id = 'schedules'")).all()
        conn.execute(text("DELETE FROM role_permissions WHERE module_id = 'schedules'"))
        for role in ROLES:
            conn.execute(text("INSERT INTO role_permissions (role_id, module_id, permissions) "
                              "VALUES (:r, 'schedules', ARRAY['read', 'update'])"), {"r": role})
    permissions.GRANTS_CACHE.invalidate()
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM role_permissions WHERE module_id = 'schedules'"))
        for role, granted in saved:
            conn.execute(text("INSERT INTO role_permissions (role_id, module_id, permissions) "
                              "VALUES (:r, 'schedules', :p)"), {"r": role, "p": granted})
    permissions.GRANTS_CACHE.invalidate()


def test_schedules_list_run_and_edit_by_role_and_kind(
        app: Any, engine: Engine, accounts: dict[str, Account], matrix_schedules: dict[str, str],
        schedules_for_all_staff: None) -> None:
    table = grants(engine)
    wrong: list[tuple[str, str, str, Any]] = []
    for role, account in accounts.items():
        client = client_for(app, account)
        listed = client.get("/api/v1/schedules")
        assert listed.status_code == 200, (role, listed.json)
        names = {s["name"] for s in listed.json}
        for kind, schedule_id in matrix_schedules.items():
            expected = sees_kind(table, role, kind)
            if (f"matrix.{kind}" in names) != expected:
                wrong.append((role, kind, "list", not expected))
            edited = client.patch(f"/api/v1/schedules/{schedule_id}", json={"interval_seconds": 7200})
            if edited.status_code != (200 if expected else 404):
                wrong.append((role, kind, "edit", edited.status_code))
            disabled = client.post(f"/api/v1/schedules/{schedule_id}/disable")
            if disabled.status_code != (200 if expected else 404):
                wrong.append((role, kind, "disable", disabled.status_code))
            ran = client.post(f"/api/v1/schedules/{schedule_id}/run")
            if ran.status_code != (202 if expected else 404):
                wrong.append((role, kind, "run", ran.status_code))
        with engine.begin() as conn:  # the next role's run must not meet this one's queued job
            conn.execute(text("DELETE FROM jobs WHERE schedule_id IS NOT NULL"))
    assert wrong == []


def test_it_may_not_run_payroll_through_its_schedule(
        app: Any, engine: Engine, accounts: dict[str, Account], matrix_schedules: dict[str, str]) -> None:
    it = client_for(app, accounts["it_department"])
    payroll = matrix_schedules["payroll.run"]
    assert "matrix.payroll.run" not in {s["name"] for s in it.get("/api/v1/schedules").json}
    assert "matrix.reports.refresh" in {s["name"] for s in it.get("/api/v1/schedules").json}
    for answer in (it.post(f"/api/v1/schedules/{payroll}/run"), it.post(f"/api/v1/schedules/{payroll}/enable"),
                   it.patch(f"/api/v1/schedules/{payroll}", json={"cron": "* * * * *"})):
        assert answer.status_code == 404 and answer.content_type == "application/problem+json"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'payroll.run'")).scalar_one() == 0
        row = conn.execute(text("SELECT enabled, cron FROM schedules WHERE id = :id"), {"id": payroll}).one()
    assert (row.enabled, row.cron) == (False, None)
    hr = client_for(app, accounts["hr_department"])
    assert hr.get("/api/v1/schedules").status_code == 403  # HR holds payroll, not schedules:read
    assert uuid.UUID(client_for(app, accounts["super_admin"]).post(f"/api/v1/schedules/{payroll}/run").json["id"])
