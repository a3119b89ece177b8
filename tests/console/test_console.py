"""The console through Flask's test client: sign-in, what each role is offered and refused, CSRF,
and the dashboard, jobs and schedules pages acting through the API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.factories.accounts import PASSWORD, make_account
from tests.factories.console import Browser, nav, signed_in
from tests.helpers import count_jobs, job_row


def test_signing_in_lands_on_the_first_section_and_pages_need_a_session(app: Any, engine: Engine) -> None:
    anonymous = app.test_client()
    answer = anonymous.get("/console/jobs")
    assert answer.status_code == 302 and "/console/login?next=/console/jobs" in answer.headers["Location"]
    browser = Browser(app, make_account(engine, "it_department"))
    answer = browser.login_form(email=browser.account.email, password=PASSWORD, next="/console/jobs")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/jobs")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_wrong_password_is_refused_with_a_message(app: Any, engine: Engine) -> None:
    account = make_account(engine, "accounts_department")
    answer = Browser(app, account).login_form(email=account.email, password="wrong password!")
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.get_data(as_text=True)


def test_customers_and_vendors_cannot_use_the_console(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    answer = Browser(app, account).login_form(email=account.email, password=PASSWORD)
    assert answer.status_code == 403
    assert "for platform staff" in answer.get_data(as_text=True)


@pytest.mark.parametrize(("role", "offered", "refused"), [
    ("accounts_department", ["Settlements", "Payroll"], ["Campaigns", "Schedules"]),
    ("marketing_department", ["Campaigns"], ["Payroll", "Settlements", "Schedules"]),
    ("hr_department", ["Payroll"], ["Settlements", "Campaigns"]),
    ("it_department", ["Dashboard", "Jobs", "Schedules"], ["Payroll", "Settlements"]),
])
def test_each_role_is_offered_its_sections_and_refused_the_others(app: Any, engine: Engine, role: str,
                                                                   offered: list[str], refused: list[str]) -> None:
    browser = signed_in(app, engine, role)
    shown = nav(browser.get("/console/jobs"))
    assert set(offered) <= set(shown) and not set(refused) & set(shown), shown
    paths = {"Payroll": "/console/payroll", "Settlements": "/console/settlements", "Campaigns": "/console/campaigns",
             "Schedules": "/console/schedules"}
    for section in refused:
        page = browser.get(paths[section])
        assert page.status_code == 403, section
        assert "may not" in page.get_data(as_text=True)


def test_marketing_is_refused_every_payroll_url(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "marketing_department")
    some = uuid.uuid4()
    for path in ("/console/payroll", f"/console/payroll/runs/{some}", f"/console/payroll/jobs/{some}",
                 f"/console/payroll/records/{some}/payslip", f"/console/payroll/runs/{some}/summary.csv"):
        assert browser.get(path).status_code == 403, path
    assert browser.post("/console/payroll/runs", {"month": "2026-10", "dry_run": "1"}).status_code == 403


def test_a_form_without_the_csrf_token_changes_nothing(app: Any, engine: Engine, clean_jobs: None) -> None:
    browser = signed_in(app, engine, "it_department")
    before = count_jobs(engine)
    answer = browser.client.post("/console/dashboard/refresh", data={})
    assert answer.status_code == 403
    answer = browser.client.post("/console/dashboard/refresh", data={"csrf": browser.csrf},
                                 headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert count_jobs(engine) == before


def test_dashboard_draws_charts_and_refresh_goes_through_the_api(app: Any, engine: Engine, clean_jobs: None) -> None:
    browser = signed_in(app, engine, "it_department")
    page = browser.get("/console/dashboard")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert body.count('<svg class="chart"') >= 3 and "Bookings per day" in body
    answer = browser.post("/console/dashboard/refresh", headers={"X-Request-ID": "console-refresh-1"})
    assert answer.status_code == 302 and "/console/jobs/" in answer.headers["Location"]
    job_id = answer.headers["Location"].rsplit("/", 1)[1]
    job = job_row(engine, job_id)
    assert (job["kind"], job["request_id"]) == ("reports.refresh", "console-refresh-1")  # the page's id followed


def test_a_bad_dashboard_window_is_shown_not_a_500(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    page = browser.get("/console/dashboard?start=2026-10-10&end=2026-01-01")
    assert page.status_code == 200
    assert "end: must not be before start" in page.get_data(as_text=True)


def failed_job(engine: Engine, kind: str = "system.ping") -> str:
    with engine.begin() as conn:
        return str(conn.execute(text(
            "INSERT INTO jobs (kind, params, status, attempts, error, finished_at) VALUES "
            "(:kind, '{}', 'failed', 3, '{\"type\": \"Boom\", \"message\": \"provider down\"}', now()) RETURNING id"),
            {"kind": kind}).scalar_one())


def test_jobs_page_shows_the_error_and_it_retries_a_failed_job(app: Any, engine: Engine, clean_jobs: None) -> None:
    job_id = failed_job(engine)
    browser = signed_in(app, engine, "it_department")
    body = browser.get("/console/jobs?status=failed").get_data(as_text=True)
    assert job_id in body and "provider down" in body and "Retry" in body
    answer = browser.post(f"/console/jobs/{job_id}/retry")
    assert answer.status_code == 302
    row = job_row(engine, job_id)
    assert row["status"] == "queued" and row["attempts"] == 0 and row["error"] is None
    again = browser.post(f"/console/jobs/{job_id}/retry")
    shown = browser.get(again.headers["Location"]).get_data(as_text=True)
    assert "only a failed or cancelled job can be retried" in shown


def test_retry_is_offered_only_to_roles_that_may_start_that_kind(app: Any, engine: Engine, clean_jobs: None) -> None:
    job_id = failed_job(engine, "settlements.run")
    marketing = signed_in(app, engine, "marketing_department")
    assert "Retry" not in marketing.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    marketing.post(f"/console/jobs/{job_id}/retry")
    assert job_row(engine, job_id)["status"] == "failed"
    finance = signed_in(app, engine, "accounts_department")
    assert "Retry" in finance.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    finance.post(f"/console/jobs/{job_id}/retry")
    assert job_row(engine, job_id)["status"] == "queued"


def test_a_retry_the_api_refuses_is_refused_in_the_console_with_the_apis_words(
        app: Any, engine: Engine, clean_jobs: None) -> None:
    # IT may read jobs (the console page lets it through) and sees its own settlement run, but may not
    # start settlements: only the API's check (auth.may_run) stands between the console and a re-run.
    browser = signed_in(app, engine, "it_department")
    with engine.begin() as conn:
        job_id = str(conn.execute(text(
            "INSERT INTO jobs (kind, params, status, attempts, requested_by, finished_at) "
            "VALUES ('settlements.run', '{}', 'failed', 3, :me, now()) RETURNING id"),
            {"me": browser.account.id}).scalar_one())
    shown = browser.get(f"/console/jobs/{job_id}")
    assert shown.status_code == 200 and "Retry" not in shown.get_data(as_text=True)
    posted = browser.post(f"/console/jobs/{job_id}/retry", headers={"User-Agent": "staff-browser/1.0"})
    assert posted.status_code == 302
    page = browser.get(posted.headers["Location"]).get_data(as_text=True)
    assert "a it_department may not re-run settlements.run jobs (settlements:" in page
    assert job_row(engine, job_id)["status"] == "failed"
    # The API's own hooks ran too: its audit log has the refusal, from the staff member's browser.
    with engine.connect() as conn:
        audited = conn.execute(text(
            "SELECT status, path, ip, user_agent, details->>'refused' AS refused FROM audit_log "
            "WHERE actor_id = :me AND path = :path"),
            {"me": browser.account.id, "path": f"/api/v1/jobs/{job_id}/retry"}).mappings().one()
    assert (audited["status"], audited["user_agent"]) == (403, "staff-browser/1.0")
    assert audited["ip"] == browser.client.environ_base["REMOTE_ADDR"]
    assert "may not re-run settlements.run jobs" in audited["refused"]


def test_the_job_fragment_stops_polling_once_the_job_is_done(app: Any, engine: Engine, clean_jobs: None) -> None:
    job_id = failed_job(engine)
    browser = signed_in(app, engine, "it_department")
    fragment = browser.get(f"/console/jobs/{job_id}?fragment=1").get_data(as_text=True)
    assert fragment.startswith('\n<div class="card" id="job-live"') or 'id="job-live"' in fragment.split("\n")[1]
    assert 'data-live="false"' in fragment and "<html" not in fragment


def schedule_row(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM schedules WHERE name = :n"), {"n": name}).mappings().one())


def test_schedules_are_listed_edited_disabled_and_run_now(app: Any, engine: Engine, clean_jobs: None) -> None:
    name = "reports.refresh-dashboards"
    schedule = schedule_row(engine, name)
    browser = signed_in(app, engine, "it_department")
    page = browser.get("/console/schedules").get_data(as_text=True)
    assert name in page and "Run now" in page
    sid = schedule["id"]
    bad = browser.post(f"/console/schedules/{sid}/trigger", {"cron": "61 * * * *"})
    assert "does not parse" in browser.get(bad.headers["Location"]).get_data(as_text=True)
    assert schedule_row(engine, name)["cron"] == schedule["cron"]
    browser.post(f"/console/schedules/{sid}/trigger", {"cron": "*/20 * * * *"})
    assert schedule_row(engine, name)["cron"] == "*/20 * * * *"
    assert schedule_row(engine, name)["interval_seconds"] is None
    browser.post(f"/console/schedules/{sid}/disable")
    assert schedule_row(engine, name)["enabled"] is False
    browser.post(f"/console/schedules/{sid}/enable")
    assert schedule_row(engine, name)["enabled"] is True
    ran = browser.post(f"/console/schedules/{sid}/run")
    job_id = ran.headers["Location"].rsplit("/", 1)[1]
    assert job_row(engine, job_id)["schedule_id"] == sid
    busy = browser.post(f"/console/schedules/{sid}/run")
    assert "still queued or running" in browser.get(busy.headers["Location"]).get_data(as_text=True)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schedules SET cron = :c, interval_seconds = :i WHERE id = :id"),
                     {"c": schedule["cron"], "i": schedule["interval_seconds"], "id": sid})


def test_admin_reads_schedules_but_is_not_offered_changes(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "admin")
    page = browser.get("/console/schedules").get_data(as_text=True)
    assert "reports.refresh-dashboards" in page and "Run now" not in page
    some = schedule_row(engine, "reports.refresh-dashboards")["id"]
    assert browser.post(f"/console/schedules/{some}/disable").status_code == 403


def test_times_are_shown_in_the_platforms_zone(app: Any) -> None:
    from web.console.session import when

    with app.app_context():
        assert when("2026-11-26T22:30:00+00:00") == "2026-11-27 04:00"  # Asia/Kolkata, UTC+05:30
        assert when("2026-11-26T22:30:05.123+00:00", True) == "2026-11-27 04:00:05"
        assert when(None) == "—"
