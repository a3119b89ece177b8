"""The demo data's bank details are sealed as the API seals them: the therapists' show (issue 12:
every GET /therapists logged an error per therapist and showed null) and the employees' open in the
payroll bank file (issue 13: it refused all 60). A real worker computes the month."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from ombaro.identity import tokens
from tests.helpers import job_row, wait_until
from tests.services import Process, start_worker
from tests.web.helpers import Demo
from workers.app import enqueuer

pytestmark = pytest.mark.db


def _client(demo: Demo, role: str) -> Any:
    """The demo login of `role`, with a fresh token."""
    user_id = demo.scalar("SELECT u.id FROM auth.users u JOIN user_profiles p ON p.id = u.id "
                          "WHERE p.role = :role AND p.status = 'active' ORDER BY u.email LIMIT 1", role=role)
    client = demo.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens.issue_access_token(load_settings(), user_id, role)}"
    return client


def test_every_demo_therapist_shows_bank_details_and_nothing_is_logged_as_an_error(
        demo: Demo, caplog: pytest.LogCaptureFixture) -> None:
    therapists = demo.scalar("SELECT count(*) FROM therapists")
    with caplog.at_level(logging.ERROR):
        response = demo.client().get("/api/v1/therapists?limit=500")
    assert response.status_code == 200
    assert len(response.json) == therapists > 0
    assert all(re.fullmatch(r"[0-9]{12}", t["bank_details"]["account_number"]) for t in response.json)
    assert all(re.fullmatch(r"[A-Z]{4}0[0-9]{6}", t["bank_details"]["ifsc"]) for t in response.json)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Staff who may read therapists but not bank details see them masked, never null.
    masked = _client(demo, "customer_care").get("/api/v1/therapists?limit=500")
    assert masked.status_code == 200 and masked.json
    assert all(re.fullmatch(r"X{8}[0-9]{4}", t["bank_details"]["account_number"]) for t in masked.json)


def _relay_until(demo: Demo, predicate: Callable[[], Any], what: str) -> Any:
    """What the scheduler's relay does: hand queued jobs to the broker again (another session's worker
    on the shared test Redis may take a message of ours and find no such job in its database)."""
    enqueue = enqueuer(demo.app.extensions["ombaro"].settings.redis_url)

    def relayed_and(check: Callable[[], Any]) -> Any:
        with Session(demo.engine) as session, session.begin():
            commands.relay(session, enqueue, stale_seconds=3)
        return check()

    return wait_until(lambda: relayed_and(predicate), timeout=120, what=what)


def test_the_payroll_bank_file_pays_every_demo_employee_with_net_pay(demo: Demo,
                                                                      spawn: Callable[..., Process]) -> None:
    start_worker(spawn, env={"DATABASE_URL": demo.url})
    hr, accounts = _client(demo, "hr_department"), _client(demo, "accounts_department")
    last_month = demo.scalar("SELECT date_trunc('month', CAST(:today AS date)) - interval '1 month'", today=demo.today)
    period = {"year": last_month.year, "month": last_month.month}

    started = hr.post("/api/v1/payroll/runs", json=period)
    assert started.status_code == 202, started.json
    job = _relay_until(demo, lambda: (row := job_row(demo.engine, started.json["id"]))["status"]
                       in ("succeeded", "failed") and row, "the payroll run job")
    assert job["status"] == "succeeded", job["error"]
    run_id = job["result"]["run_id"]
    run = _relay_until(demo, lambda: (r := hr.get(f"/api/v1/payroll/runs/{run_id}").json)["status"] == "computed"
                       and r, "the run's batches")
    approved = hr.post(f"/api/v1/payroll/runs/{run_id}/approve", json={"allow_failures": bool(run["failures"])})
    assert approved.status_code == 200, approved.json
    processed = demo.scalar("SELECT count(*) FROM salary_records WHERE year = :year AND month = :month "
                            "AND status = 'processed' AND net_salary > 0", **period)
    assert processed > 0

    paid = accounts.post(f"/api/v1/payroll/runs/{run_id}/bank-file")
    assert paid.status_code == 200, paid.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(paid.get_data(as_text=True))))
    assert len(rows) == processed
    assert all(re.fullmatch(r"[0-9]{12}", r["account_number"]) for r in rows)
    (entry,) = hr.get(f"/api/v1/payroll/runs/{run_id}").json["bank_files"]
    assert entry["count"] == processed
    assert [s for s in entry["skipped"] if s["reason"] != "net pay is zero"] == []
    assert demo.scalar("SELECT count(*) FROM salary_records WHERE year = :year AND month = :month "
                       "AND status = 'paid'", **period) == processed
