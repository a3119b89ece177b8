"""Payroll (HR): preview a month, run it, review every employee's lines, hold, approve, download
the bank file, the run summary and payslips."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from web.console import bp
from web.console.dispatch import today  # the platform's date, not the machine's
from web.console.jobs import job_page
from web.console.session import api, download, flash_answer, page

SECTION = ("payroll", "export")  # see session.SECTIONS


def _month(value: str | None) -> tuple[int | None, int | None]:
    try:
        year, month = (value or "").split("-")
        return int(year), int(month)
    except ValueError:
        return None, None


@bp.get("/payroll")
@page(*SECTION)
def payroll() -> Any:
    runs = api("GET", "/api/v1/payroll/runs")
    last_month = (today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return render_template("console/payroll.html", runs=runs.body if runs.ok else [], answer=runs,
                           default_month=last_month)


@bp.post("/payroll/runs")
@page("payroll", "create")
def run_payroll() -> Any:
    year, month = _month(request.form.get("month"))
    dry = request.form.get("dry_run") == "1"
    answer = api("POST", "/api/v1/payroll/runs", json={"year": year, "month": month, "dry_run": dry})
    if flash_answer(answer, "Preview started: nothing is written." if dry else "Payroll run started."):
        return redirect(url_for("console.payroll_job", job_id=answer.body["id"]))
    return redirect(url_for("console.payroll"))


@bp.get("/payroll/jobs/<uuid:job_id>")
@page(*SECTION)
def payroll_job(job_id: Any) -> Any:
    return job_page(job_id, "console/payroll_job.html", reload_when_done=True)


@bp.get("/payroll/runs/<uuid:run_id>")
@page(*SECTION)
def payroll_run(run_id: Any) -> Any:
    run = api("GET", f"/api/v1/payroll/runs/{run_id}")
    if run.status == 404:
        abort(404)
    records = api("GET", "/api/v1/payroll/records",
                  query={"year": run.body["year"], "month": run.body["month"], "limit": 1000})
    return render_template("console/payroll_run.html", run=run.body, records=records.body if records.ok else [],
                           records_answer=records, live=run.body["status"] in ("queued", "computing"))


@bp.post("/payroll/runs/<uuid:run_id>/approve")
@page("payroll", "approve")
def approve_payroll(run_id: Any) -> Any:
    body = {"allow_failures": request.form.get("allow_failures") == "1"}
    flash_answer(api("POST", f"/api/v1/payroll/runs/{run_id}/approve", json=body), "Approved: records are processed.")
    return redirect(url_for("console.payroll_run", run_id=run_id))


@bp.post("/payroll/records/<uuid:record_id>/<any(hold, release):action>")
@page("payroll", "approve")
def hold_salary(record_id: Any, action: str) -> Any:
    body = {"reason": request.form.get("reason", "")} if action == "hold" else None
    flash_answer(api("POST", f"/api/v1/payroll/records/{record_id}/{action}", json=body),
                 "Put on hold." if action == "hold" else "Released.")
    return redirect(request.form.get("back") or url_for("console.payroll"))


@bp.post("/payroll/runs/<uuid:run_id>/bank-file")
@page("payroll", "export")
def bank_file(run_id: Any) -> Any:
    return download(api("POST", f"/api/v1/payroll/runs/{run_id}/bank-file"))


@bp.get("/payroll/runs/<uuid:run_id>/bank-file")
@page("payroll", "export")
def bank_file_again(run_id: Any) -> Any:
    return download(api("GET", f"/api/v1/payroll/runs/{run_id}/bank-file",
                        query={"reference": request.args.get("reference", "")}))


@bp.get("/payroll/runs/<uuid:run_id>/summary.csv")
@page("payroll", "export")
def payroll_summary(run_id: Any) -> Any:
    return download(api("GET", f"/api/v1/payroll/runs/{run_id}/summary.csv"))


@bp.get("/payroll/records/<uuid:record_id>/payslip")
@page("payroll", "export")
def payslip(record_id: Any) -> Any:
    return download(api("GET", f"/api/v1/payroll/records/{record_id}/payslip"))
