"""The operator endpoints the console and CLI stand on: schedules and job retry through the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import client_for, make_account
from tests.helpers import job_row


def schedule_id(engine: Engine, name: str = "reports.refresh-dashboards") -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT id FROM schedules WHERE name = :n"), {"n": name}).scalar_one())


def test_schedules_list_with_next_firing_and_trigger_changes_are_validated(
        app: Any, engine: Engine, clean_jobs: None) -> None:
    it = client_for(app, make_account(engine, "it_department"))
    listed = {s["name"]: s for s in it.get("/api/v1/schedules").json}
    refresh = listed["reports.refresh-dashboards"]
    assert refresh["enabled"] and refresh["next_fire_time"] is not None
    sid = schedule_id(engine)
    for body, field in (({"cron": "0 25 * * *"}, "cron"), ({}, "cron"), ({"cron": "* * * *"}, "cron"),
                        ({"cron": "0 2 * * 1", "interval_seconds": 60}, "cron"), ({"interval_seconds": 0}, None)):
        answer = it.patch(f"/api/v1/schedules/{sid}", json=body)
        assert answer.status_code == 422, body
        assert answer.content_type == "application/problem+json"
        if field:
            assert field in answer.json.get("errors", {}) or "parse" in answer.json["detail"]
    assert it.get("/api/v1/schedules").json == list(listed.values())  # nothing changed
    changed = it.patch(f"/api/v1/schedules/{sid}", json={"cron": "30 2 * * 1", "timezone": "Asia/Kolkata"})
    assert changed.status_code == 200 and changed.json["cron"] == "30 2 * * 1"
    assert changed.json["interval_seconds"] is None
    when = dt.datetime.fromisoformat(changed.json["next_fire_time"])  # in the schedule's zone
    assert (when.weekday(), when.hour, when.minute, when.utcoffset()) == (0, 2, 30, dt.timedelta(hours=5, minutes=30))
    assert it.post(f"/api/v1/schedules/{sid}/disable").json["next_fire_time"] is None
    assert it.post(f"/api/v1/schedules/{sid}/enable").json["enabled"] is True
    with engine.begin() as conn:
        conn.execute(text("UPDATE schedules SET cron = :c, interval_seconds = :i WHERE id = :id"),
                     {"c": refresh["cron"], "i": refresh["interval_seconds"], "id": sid})


def test_run_now_submits_one_job_and_refuses_while_it_is_queued(app: Any, engine: Engine, clean_jobs: None) -> None:
    it = client_for(app, make_account(engine, "it_department"))
    sid = schedule_id(engine)
    first = it.post(f"/api/v1/schedules/{sid}/run")
    assert first.status_code == 202 and first.headers["Location"].endswith(first.json["id"])
    row = job_row(engine, first.json["id"])
    assert (str(row["schedule_id"]), row["kind"], row["status"]) == (sid, "reports.refresh", "queued")
    again = it.post(f"/api/v1/schedules/{sid}/run")
    assert again.status_code == 409 and "still queued or running" in again.json["detail"]
    assert it.post(f"/api/v1/schedules/{'0' * 8}-0000-0000-0000-{'0' * 12}/run").status_code == 404


def test_retry_needs_a_failed_job_and_the_right_to_start_its_kind(app: Any, engine: Engine, clean_jobs: None) -> None:
    with engine.begin() as conn:
        job_id = str(conn.execute(text(
            "INSERT INTO jobs (kind, status, attempts, error, progress) VALUES ('settlements.run', 'failed', 3, "
            "'{\"type\": \"X\", \"message\": \"boom\"}', 40) RETURNING id")).scalar_one())
    marketing = client_for(app, make_account(engine, "marketing_department"))
    hidden = marketing.post(f"/api/v1/jobs/{job_id}/retry")  # not theirs to see (docs/security.md)
    assert hidden.status_code == 404 and hidden.content_type == "application/problem+json"
    finance = client_for(app, make_account(engine, "accounts_department"))
    retried = finance.post(f"/api/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202
    assert (retried.json["status"], retried.json["attempts"], retried.json["error"], retried.json["progress"]) == (
        "queued", 0, None, 0)
    conflict = finance.post(f"/api/v1/jobs/{job_id}/retry")
    assert conflict.status_code == 409 and "queued" in conflict.json["detail"]
