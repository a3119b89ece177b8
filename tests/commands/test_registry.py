"""The command registry: every kind declared once with its typed params, permission and queue;
`submit` refuses an unknown kind or invalid params and writes nothing; the API, the schedules and
the worker path all load params through it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.access import permissions
from ombaro.config import load_settings
from ombaro.payroll import commands as payroll_commands
from ombaro.payroll import runs
from tests.factories.accounts import client_for, make_account
from tests.factories.payroll import add_structure, new_employee
from tests.helpers import count_jobs, job_row

pytestmark = pytest.mark.db


def nothing(job_id: uuid.UUID, kind: str) -> None:
    """No broker: these jobs are run in this process or not at all."""


def submit(engine: Engine, kind: str, params: Any, **kw: Any) -> commands.Submitted:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return commands.submit(session, kind, params, enqueue=nothing, **kw)


def run_here(engine: Engine, job_id: uuid.UUID) -> str:
    """Run a job through its declaration, as the generic worker task does."""
    kind = job_row(engine, job_id)["kind"]
    env = commands.Environment(settings=load_settings(), engine=engine, enqueue=nothing)
    return commands.execute(job_id, commands.command_of(kind).run(env), engine=engine, lease_seconds=60)


# --- the declarations ------------------------------------------------------------------------------


def test_each_kind_declares_the_permission_the_database_enforces_and_an_example_that_loads(engine: Engine) -> None:
    declared = commands.registry()
    assert set(declared) == set(permissions.JOB_KIND_PERMISSIONS)
    with engine.connect() as conn:
        for kind, command in declared.items():
            assert command.permission == permissions.job_permission(kind), kind
            in_db = conn.execute(text("SELECT auth.job_permission(:k)"), {"k": kind}).scalar_one()
            assert in_db == ":".join(command.permission), kind
            assert command.kind == kind and command.max_attempts >= 1 and command.result is not None
            assert isinstance(command.load(command.example), command.params.model), kind


def test_a_kind_is_declared_once() -> None:
    ping = commands.command_of("system.ping")
    twin = commands.Command(kind="system.ping", params=ping.params, handler=ping.handler, queue="bulk",
                            permission=ping.permission)
    with pytest.raises(ValueError, match="declared twice"):
        commands.declare(twin)
    assert commands.command_of("system.ping") is ping
    with pytest.raises(ValueError, match="no queue"):
        commands.Command(kind="x.y", params=ping.params, handler=ping.handler, queue="fast",
                         permission=("jobs", "create"))


# --- submit ----------------------------------------------------------------------------------------


def test_submit_refuses_an_unknown_kind_and_writes_nothing(engine: Engine, clean_jobs: None) -> None:
    with pytest.raises(commands.UnknownCommand, match=r"dispatch\.match"):
        submit(engine, "dispatch.match", {"booking_id": str(uuid.uuid4())})
    assert count_jobs(engine) == 0


@pytest.mark.parametrize(("kind", "params", "field", "message"), [
    ("settlements.run", {"period_start": "2025-01-01", "period_end": "2025-04-03"}, "period_end", "at most 92 days"),
    ("settlements.run", {"period_start": "2025-06-08", "period_end": "2025-06-02"}, "period_end", "before it starts"),
    ("settlements.run", {"period_start": "2025-06-02"}, "period_end", "give both"),
    ("settlements.run", {"period_start": "2025-06-02", "period_end": "2025-06-08", "note": 1}, "note", "Unknown"),
    ("payroll.run", {"year": 2000, "month": 1}, "month", "from 2000-04 to 2100-03"),
    ("payroll.run", {"year": 2100, "month": 4}, "month", "from 2000-04 to 2100-03"),
    ("payroll.run", {"year": 2026, "month": 13}, "month", "less than or equal to 12"),
    ("payroll.run", {"year": "2026", "month": 6}, "year", "integer"),
    ("reports.refresh", {"views": ["no_such_view"]}, "views", "Must be one of"),
    ("dispatch.batch", {"date": "2026-06-01"}, "_schema", "either vendor_id or city"),
    ("dispatch.booking", {}, "booking_id", "required"),
    ("system.ping", {"fail": "sometimes"}, "fail", "Must be one of"),
])
def test_submit_refuses_invalid_params_naming_the_field_and_writes_nothing(
        engine: Engine, clean_jobs: None, kind: str, params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(commands.InvalidParams) as refused:
        submit(engine, kind, params)
    assert field in refused.value.errors, refused.value.errors
    assert message in json.dumps(refused.value.errors[field]), refused.value.errors
    assert count_jobs(engine) == 0


def test_submit_stores_the_params_as_loaded_and_one_meaning_is_one_request(engine: Engine, clean_jobs: None) -> None:
    first = submit(engine, "settlements.run", {"period_start": "2025-06-02", "period_end": "2025-06-08"},
                   key="k1", scope="tests")
    assert first.created
    stored = job_row(engine, first.job.id)
    assert stored["params"] == {"period_start": "2025-06-02", "period_end": "2025-06-08", "dry_run": False}
    assert stored["max_attempts"] == commands.command_of("settlements.run").max_attempts
    # The same request written differently (dates as dates, the default spelled out) is a replay.
    again = submit(engine, "settlements.run", {"period_start": dt.date(2025, 6, 2), "period_end": dt.date(2025, 6, 8),
                                               "dry_run": False}, key="k1", scope="tests")
    assert not again.created and again.job.id == first.job.id
    assert count_jobs(engine) == 1


def dry_run_here(engine: Engine, year: int, month: int) -> dict[str, Any]:
    """The payroll run's domain call itself, around the registry."""
    with Session(engine) as session, session.begin():
        return runs.start_run(session, {"year": year, "month": month, "dry_run": True}, job_id=None,
                              requested_by=None, scheduled_for=None, zone="Asia/Kolkata", enqueue=nothing)


def test_the_payroll_months_the_command_accepts_are_exactly_those_the_job_serves(
        engine: Engine, clean_jobs: None) -> None:
    employee = new_employee(engine, joining=dt.date(1999, 1, 1))
    add_structure(engine, employee, dt.date(1999, 1, 1), basic="20000", hra="8000", pt_state="MH")
    for year, month in (payroll_commands.FIRST_MONTH, payroll_commands.LAST_MONTH):
        job_id = submit(engine, "payroll.run", {"year": year, "month": month, "dry_run": True}).job.id
        assert run_here(engine, job_id) == "succeeded", job_row(engine, job_id)["error"]
        result = job_row(engine, job_id)["result"]
        assert (result["dry_run"], result["year"], result["month"]) == (True, year, month)
        assert "not a payroll month" not in json.dumps(result["failures"]), result["failures"]
    # Just outside: the job fails (January 2000 looks up December 1999, issue 15), or the employee
    # cannot be computed (April 2100's financial year ends in March 2101).
    with pytest.raises(ValueError, match="not a payroll month: 1999-12"):
        dry_run_here(engine, 2000, 1)
    after = dry_run_here(engine, 2100, 4)
    assert [f["reason"] for f in after["failures"] if f["employee_id"] == str(employee)] == [
        "not a payroll month: 2101-3"]


def test_the_worker_path_hands_the_handler_typed_params(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "system.ping", {"steps": 2, "echo": {"n": 7}}).job.id
    assert run_here(engine, job_id) == "succeeded"
    row = job_row(engine, job_id)
    assert row["result"]["pong"] is True and row["result"]["echo"] == {"n": 7} and row["progress"] == 100
    assert commands.command_of("system.ping").result().validate(row["result"]) == {}  # the documented shape


def test_a_refresh_result_has_its_documented_shape(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "reports.refresh", {"views": ["dashboard_stats"]}).job.id
    assert run_here(engine, job_id) == "succeeded"
    result = job_row(engine, job_id)["result"]
    assert [v["view"] for v in result["views"]] == ["dashboard_stats"]
    assert commands.command_of("reports.refresh").result().validate(result) == {}


def test_a_job_whose_stored_params_no_longer_load_fails_with_the_reason(engine: Engine, clean_jobs: None) -> None:
    with engine.begin() as conn:  # written around the registry, e.g. before a kind's schema changed
        job_id = conn.execute(text("INSERT INTO jobs (kind, params) VALUES ('reports.refresh', "
                                   "'{\"views\": [\"gone\"]}') RETURNING id")).scalar_one()
    assert run_here(engine, job_id) == "failed"
    assert job_row(engine, job_id)["error"]["type"] == "InvalidParams"


def test_retry_refuses_a_kind_no_longer_declared(engine: Engine, clean_jobs: None) -> None:
    with engine.begin() as conn:
        job_id = conn.execute(text("INSERT INTO jobs (kind, status, attempts) VALUES ('dispatch.match', 'failed', 3) "
                                   "RETURNING id")).scalar_one()
    with Session(engine) as session, session.begin(), pytest.raises(commands.UnknownCommand):
        commands.retry(session, job_id, enqueue=nothing)
    assert job_row(engine, job_id)["status"] == "failed"


# --- through the API -------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "path", "body", "field"), [
    ("hr_department", "/api/v1/payroll/runs", {"year": 2000, "month": 1}, "month"),
    ("accounts_department", "/api/v1/settlements/runs", {"period_start": "2025-01-01", "period_end": "2025-06-30"},
     "period_end"),
])
def test_the_api_answers_the_registrys_refusal_as_a_422_with_field_errors(
        app: Any, engine: Engine, clean_jobs: None, role: str, path: str, body: dict[str, Any], field: str) -> None:
    client = client_for(app, make_account(engine, role))
    answer = client.post(path, json=body)
    assert answer.status_code == 422 and answer.content_type == "application/problem+json", answer.json
    assert field in answer.json["errors"], answer.json
    assert count_jobs(engine) == 0


def test_the_payroll_api_accepts_the_first_month_a_run_serves(app: Any, engine: Engine, clean_jobs: None) -> None:
    client = client_for(app, make_account(engine, "hr_department"))
    answer = client.post("/api/v1/payroll/runs", json={"year": 2000, "month": 4, "dry_run": True})
    assert answer.status_code == 202, answer.json
    assert answer.json["params"] == {"year": 2000, "month": 4, "dry_run": True}


def test_the_stored_fingerprint_is_the_fingerprint_of_the_params_as_given() -> None:
    """A job's request_hash (job_values, hashed from the params as stored) is `fingerprint` of the
    params as the caller gave them, for every kind: a key used before still finds its job."""
    for kind, command in commands.registry().items():
        given = dict(command.example)
        values = commands.job_values(kind, given, key="k")
        assert values["request_hash"] == commands.fingerprint(kind, values["params"])
        assert values["request_hash"] == commands.fingerprint(kind, commands.validate_params(kind, given)), kind
