"""Attendance, leave and payroll over HTTP, as each role; the month's run end to end with a real
Celery worker (the run command fans out its batches through the broker)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from tests.factories.accounts import Account, client_for, make_account
from tests.helpers import job_row, wait_until
from tests.services import Process
from workers.app import enqueue

BANK = {"account_number": "123456789012", "ifsc": "HDFC0001234", "bank_name": "HDFC Bank"}


@pytest.fixture(scope="module")
def people(engine: Engine) -> dict[str, Account]:
    return {"employee": make_account(engine, "employee", bank_details=BANK),
            "colleague": make_account(engine, "employee"),
            "hr": make_account(engine, "hr_department"), "staff": make_account(engine, "staff_department"),
            "accounts": make_account(engine, "accounts_department"), "directors": make_account(engine, "directors")}


def relayed(engine: Engine) -> bool:
    """What the scheduler's relay does every few seconds: hand over again the jobs still queued a while
    after their message went out (test sessions running side by side share the test Redis database,
    so another session's worker may take a message of ours and find no such job in its database)."""
    with Session(engine) as session, session.begin():
        commands.relay(session, enqueue, stale_seconds=3)
    return True


def settled(engine: Engine, job_id: str) -> dict[str, Any]:
    return wait_until(lambda: relayed(engine) and (row := job_row(engine, job_id))["status"]
                      in ("succeeded", "failed") and row, timeout=60, what=f"job {job_id}")


def as_(app: Any, account: Account) -> Any:
    return client_for(app, account)


# --- attendance ---------------------------------------------------------------------------------------------


def test_employee_checks_in_once_and_out_with_hours_computed(app: Any, people: dict[str, Account]) -> None:
    employee = as_(app, people["colleague"])
    first = employee.post("/api/v1/attendance/check-in", json={"location": {"latitude": 18.99, "longitude": 72.82,
                                                                           "address": "Lower Parel"}})
    assert first.status_code == 201, first.json
    assert first.json["status"] in ("present", "late") and first.json["employee_id"] == str(people["colleague"].id)
    assert employee.post("/api/v1/attendance/check-in", json={}).status_code == 409
    out = employee.post("/api/v1/attendance/check-out", json={})
    assert out.status_code == 200
    assert out.json["work_hours"] == "0.00" and out.json["status"] == "half_day"  # under the 4-hour threshold
    assert employee.post("/api/v1/attendance/check-out", json={}).status_code == 409
    mine = employee.get("/api/v1/attendance").json
    assert {d["employee_id"] for d in mine} == {str(people["colleague"].id)}


def test_staff_department_corrects_a_day_with_a_note_and_an_employee_may_not(
        app: Any, people: dict[str, Account], engine: Engine) -> None:
    day = {"employee_id": str(people["colleague"].id), "date": "2029-06-04", "status": "present",
           "check_in_time": "2029-06-04T09:30:00+05:30", "check_out_time": "2029-06-04T18:45:00+05:30",
           "note": "biometric reader was down"}
    assert as_(app, people["employee"]).post("/api/v1/attendance/corrections", json=day).status_code == 403
    no_note = {k: v for k, v in day.items() if k != "note"}
    refused = as_(app, people["staff"]).post("/api/v1/attendance/corrections", json=no_note)
    assert refused.status_code == 422 and "note" in refused.json["errors"]
    fixed = as_(app, people["staff"]).post("/api/v1/attendance/corrections", json=day)
    assert fixed.status_code == 200, fixed.json
    assert fixed.json["work_hours"] == "9.25" and "biometric reader was down" in fixed.json["notes"]
    assert fixed.json["approved_by"] == str(people["staff"].id)
    backwards = {**day, "check_out_time": "2029-06-04T08:00:00+05:30"}
    assert as_(app, people["hr"]).post("/api/v1/attendance/corrections", json=backwards).status_code == 422


# --- leave -------------------------------------------------------------------------------------------------


def test_leave_is_applied_for_refused_when_overlapping_and_approved_into_attendance(
        app: Any, people: dict[str, Account], engine: Engine) -> None:
    employee, hr = as_(app, people["employee"]), as_(app, people["hr"])
    request = {"leave_type": "unpaid", "from_date": "2029-07-06", "to_date": "2029-07-10", "reason": "Travel"}
    applied = employee.post("/api/v1/leave", json=request)
    assert applied.status_code == 201, applied.json
    assert applied.json["status"] == "pending" and applied.json["total_days"] == 5
    overlapping = employee.post("/api/v1/leave", json={**request, "from_date": "2029-07-10", "to_date": "2029-07-12"})
    assert overlapping.status_code == 409
    assert employee.post(f"/api/v1/leave/{applied.json['id']}/approve").status_code == 403  # no leave:approve
    approved = hr.post(f"/api/v1/leave/{applied.json['id']}/approve")
    assert approved.status_code == 200, approved.json
    # 6-10 July 2029: Friday to Tuesday, Sunday the 8th is the weekly off.
    assert approved.json["days_marked"] == 4 and approved.json["request"]["status"] == "approved"
    with engine.connect() as conn:
        days = conn.execute(text("SELECT date FROM attendance_records WHERE employee_id = :e AND status = 'leave' "
                                 "ORDER BY date"), {"e": people["employee"].id}).scalars().all()
    assert days == [dt.date(2029, 7, 6), dt.date(2029, 7, 7), dt.date(2029, 7, 9), dt.date(2029, 7, 10)]
    assert hr.post(f"/api/v1/leave/{applied.json['id']}/approve").status_code == 409  # not pending any more


def test_leave_is_rejected_with_a_reason_withdrawn_by_its_owner_and_never_self_approved(
        app: Any, people: dict[str, Account]) -> None:
    hr = as_(app, people["hr"])
    own = hr.post("/api/v1/leave", json={"leave_type": "casual", "from_date": "2029-08-01", "to_date": "2029-08-01",
                                         "reason": "Personal work"})
    assert own.status_code == 201
    assert hr.post(f"/api/v1/leave/{own.json['id']}/approve").status_code == 403
    assert hr.post(f"/api/v1/leave/{own.json['id']}/cancel").status_code == 200
    employee = as_(app, people["colleague"])
    asked = employee.post("/api/v1/leave", json={"leave_type": "sick", "from_date": "2029-08-03",
                                                 "to_date": "2029-08-02", "reason": "Fever"})
    assert asked.status_code == 422 and "to_date" in asked.json["errors"]
    asked = employee.post("/api/v1/leave", json={"leave_type": "sick", "from_date": "2029-08-02",
                                                 "to_date": "2029-08-03", "reason": "Fever"})
    assert hr.post(f"/api/v1/leave/{asked.json['id']}/reject", json={}).status_code == 422
    rejected = hr.post(f"/api/v1/leave/{asked.json['id']}/reject", json={"reason": "Quarter close"})
    assert rejected.status_code == 200 and rejected.json["rejection_reason"] == "Quarter close"


# --- payroll -----------------------------------------------------------------------------------------------


def test_rates_and_compensation_are_validated_and_refused_to_roles_without_the_right(
        app: Any, people: dict[str, Account]) -> None:
    hr = as_(app, people["hr"])
    bad = hr.post("/api/v1/payroll/rates", json={"kind": "pf", "effective_from": "2030-04-01",
                                                 "data": {"employee_rate": 12}})
    assert bad.status_code == 422
    missing = hr.post("/api/v1/payroll/rates", json={"kind": "esi", "effective_from": "2030-04-01",
                                                     "data": {"employee_rate": "0.75"}})
    assert missing.status_code == 422 and "employer_rate" in missing.json["detail"]
    odd = hr.post("/api/v1/payroll/compensation", json={"employee_id": str(people["colleague"].id),
                                                        "effective_from": "2029-01-01", "basic": "100.005"})
    assert odd.status_code == 422 and "basic" in odd.json["errors"]
    # Directors hold HR's payroll grants through the hierarchy, but the database keeps pay from them.
    refused = as_(app, people["directors"]).post("/api/v1/payroll/compensation", json={
        "employee_id": str(people["colleague"].id), "effective_from": "2029-01-01", "basic": "1000"})
    assert refused.status_code == 403
    assert as_(app, people["staff"]).get("/api/v1/payroll/compensation").json == []


def test_a_month_end_to_end_run_approve_payslip_bank_file_and_summary(
        app: Any, people: dict[str, Account], engine: Engine, worker: Process) -> None:
    hr, accounts, employee = as_(app, people["hr"]), as_(app, people["accounts"]), as_(app, people["employee"])
    me = str(people["employee"].id)
    structure = hr.post("/api/v1/payroll/compensation", json={
        "employee_id": me, "effective_from": "2029-01-01", "basic": "30000.00", "hra": "12000", "special": "3000",
        "esi_applicable": False, "pt_state": "MH"})
    assert structure.status_code == 201, structure.json
    bonus = hr.post("/api/v1/payroll/adjustments", json={"employee_id": me, "year": 2029, "month": 5,
                                                         "kind": "bonus", "amount": "2500"})
    assert bonus.status_code == 201

    dry = hr.post("/api/v1/payroll/runs", json={"year": 2029, "month": 5, "dry_run": True, "employee_ids": [me]})
    assert dry.status_code == 202
    result = settled(engine, dry.json["id"])["result"]
    assert result["dry_run"] is True and result["changes"][0]["employee_id"] == me

    started = hr.post("/api/v1/payroll/runs", json={"year": 2029, "month": 5, "employee_ids": [me]})
    assert started.status_code == 202 and started.json["kind"] == "payroll.run"
    job = settled(engine, started.json["id"])
    assert job["status"] == "succeeded", job["error"]
    run_id = job["result"]["run_id"]
    run = wait_until(lambda: relayed(engine) and (r := hr.get(f"/api/v1/payroll/runs/{run_id}").json)["status"]
                     == "computed" and r, timeout=60, what="the run's batches")
    assert run["batches_done"] == run["batches_total"] == 1

    assert employee.get("/api/v1/payroll/payslip?year=2029&month=5").status_code == 404  # not approved yet
    approved = hr.post(f"/api/v1/payroll/runs/{run_id}/approve", json={})
    assert approved.status_code == 200 and approved.json["processed"] >= 1

    mine = employee.get("/api/v1/payroll/records?year=2029&month=5").json
    assert [r["employee_id"] for r in mine] == [me]
    # May: 31 days, all paid; Maharashtra PT 200; PF 1,800; no ESI.
    assert mine[0]["basic_salary"] == "30000.00" and mine[0]["bonus"] == "2500.00"
    assert mine[0]["gross_salary"] == "47500.00" and mine[0]["deductions"]["professional_tax"] == "200.00"
    assert as_(app, people["colleague"]).get("/api/v1/payroll/records?year=2029&month=5").json == []
    assert as_(app, people["directors"]).get("/api/v1/payroll/records?year=2029&month=5").json == []

    slip = employee.get("/api/v1/payroll/payslip?year=2029&month=5")
    assert slip.status_code == 200 and slip.mimetype == "application/pdf" and slip.data.startswith(b"%PDF")
    assert as_(app, people["colleague"]).get("/api/v1/payroll/payslip?year=2029&month=5").status_code == 404
    hr_copy = hr.get(f"/api/v1/payroll/records/{mine[0]['id']}/payslip")  # HR's download of it
    assert hr_copy.status_code == 200 and hr_copy.data.startswith(b"%PDF")
    assert mine[0]["id"] in hr_copy.headers["Content-Disposition"]
    assert as_(app, people["colleague"]).get(f"/api/v1/payroll/records/{mine[0]['id']}/payslip").status_code == 403

    assert as_(app, people["employee"]).post(f"/api/v1/payroll/runs/{run_id}/bank-file").status_code == 403
    paid = accounts.post(f"/api/v1/payroll/runs/{run_id}/bank-file")
    assert paid.status_code == 200 and paid.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(paid.get_data(as_text=True))))
    reference = paid.headers["X-Bank-File-Reference"]
    mine_paid = [r for r in rows if r["account_number"] == BANK["account_number"]]
    assert len(mine_paid) == 1 and mine_paid[0]["ifsc"] == BANK["ifsc"]
    assert mine_paid[0]["amount"] == mine[0]["net_salary"]
    assert mine_paid[0]["reference"].startswith(reference + "/")
    assert accounts.post(f"/api/v1/payroll/runs/{run_id}/bank-file").status_code == 409  # never paid twice
    again = accounts.get(f"/api/v1/payroll/runs/{run_id}/bank-file?reference={reference}")
    assert again.status_code == 200 and again.get_data(as_text=True) == paid.get_data(as_text=True)
    assert employee.get("/api/v1/payroll/records?year=2029&month=5").json[0]["status"] == "paid"

    summary = hr.get(f"/api/v1/payroll/runs/{run_id}/summary.csv")
    assert summary.status_code == 200
    lines = list(csv.DictReader(io.StringIO(summary.get_data(as_text=True))))
    line = next(r for r in lines if r["net"] == mine[0]["net_salary"])
    assert line["status"] == "paid" and line["paid_days"] == "31.00" and line["bonus"] == "2500.00"
    assert as_(app, people["staff"]).get(f"/api/v1/payroll/runs/{run_id}/summary.csv").status_code == 403


def test_holidays_are_listed_for_everyone_and_added_by_hr(app: Any, people: dict[str, Account]) -> None:
    listed = as_(app, people["colleague"]).get("/api/v1/payroll/holidays?year=2026").json
    assert {h["date"] for h in listed} >= {"2026-01-26", "2026-08-15", "2026-10-02"}
    day = f"2031-{uuid.uuid4().int % 12 + 1:02d}-11"
    assert as_(app, people["hr"]).post("/api/v1/payroll/holidays", json={"date": day, "name": "Founders' Day",
                                                                         "kind": "company"}).status_code == 201
    assert as_(app, people["hr"]).post("/api/v1/payroll/holidays", json={"date": day,
                                                                         "name": "Again"}).status_code == 409


def test_tax_declarations_are_validated_set_by_hr_and_read_by_the_employee(
        app: Any, people: dict[str, Account], engine: Engine) -> None:
    hr, employee = as_(app, people["hr"]), as_(app, people["employee"])
    me = str(people["employee"].id)
    bad = hr.put("/api/v1/payroll/tax-declarations", json={"employee_id": me, "financial_year": 2031,
                                                           "regime": "flat", "previous_income": "-1",
                                                           "previous_tds": "10.001"})
    assert bad.status_code == 422
    assert {"regime", "previous_income", "previous_tds"} <= set(bad.json["errors"]), bad.json
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tax_declarations WHERE employee_id = :e"),
                            {"e": me}).scalar_one() == 0
    body = {"employee_id": me, "financial_year": 2031, "regime": "old", "previous_income": "350000",
            "previous_tds": "12000"}
    assert employee.put("/api/v1/payroll/tax-declarations", json=body).status_code == 403
    assert as_(app, people["directors"]).put("/api/v1/payroll/tax-declarations", json=body).status_code == 403
    nobody = hr.put("/api/v1/payroll/tax-declarations", json={**body, "employee_id": str(uuid.uuid4())})
    assert nobody.status_code == 422 and "employee_id" in nobody.json["errors"]
    made = hr.put("/api/v1/payroll/tax-declarations", json=body)
    assert made.status_code == 200 and made.json["previous_income"] == "350000.00"
    again = hr.put("/api/v1/payroll/tax-declarations", json={**body, "regime": "new"})
    assert again.status_code == 200 and again.json["id"] == made.json["id"] and again.json["regime"] == "new"
    mine = employee.get("/api/v1/payroll/tax-declarations").json
    assert [(d["financial_year"], d["regime"]) for d in mine] == [(2031, "new")]
    assert as_(app, people["colleague"]).get("/api/v1/payroll/tax-declarations?financial_year=2031").json == []


def test_tax_statements_are_for_hr_and_finance_only(app: Any, people: dict[str, Account]) -> None:
    for role in ("hr", "accounts"):
        found = as_(app, people[role]).get("/api/v1/payroll/tax-statements?financial_year=2029")
        assert found.status_code == 200 and found.json["financial_year"] == "2029-30", role
    assert as_(app, people["employee"]).get("/api/v1/payroll/tax-statements?financial_year=2029").status_code == 403
    bad = as_(app, people["hr"]).get("/api/v1/payroll/tax-statements?financial_year=1999")
    assert bad.status_code == 422 and "financial_year" in bad.json["errors"]
    # The last year the API accepts ends in March 2101, past the last payroll month (the fuzz found a 500).
    last = as_(app, people["hr"]).get("/api/v1/payroll/tax-statements?financial_year=2100")
    assert last.status_code == 200 and last.json["financial_year"] == "2100-01", last.json
