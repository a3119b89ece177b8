"""Settlements (finance): preview a period with a dry run, run it, review per vendor, approve,
pay out, download statements."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from web.console import bp
from web.console.dispatch import today as platform_today  # the platform's date, not the machine's
from web.console.jobs import job_page
from web.console.session import api, download, flash_answer, page


def last_week() -> tuple[str, str]:
    today = platform_today()
    monday = today - dt.timedelta(days=today.weekday() + 7)
    return monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat()


@bp.get("/settlements")
@page("settlements")
def settlements() -> Any:
    query = {k: v for k in ("status", "period_from", "period_to") if (v := request.args.get(k))}
    answer = api("GET", "/api/v1/settlements", query={"limit": 200, **query})
    start, end = last_week()
    return render_template("console/settlements.html", settlements=answer.body if answer.ok else [],
                           answer=answer, query=query, default_start=start, default_end=end)


@bp.post("/settlements/runs")
@page("settlements", "create")
def run_settlements() -> Any:
    body = {"period_start": request.form.get("period_start") or None,
            "period_end": request.form.get("period_end") or None,
            "dry_run": request.form.get("dry_run") == "1"}
    answer = api("POST", "/api/v1/settlements/runs", json=body)
    if flash_answer(answer, "Dry run started: nothing is written." if body["dry_run"] else "Settlement run started."):
        return redirect(url_for("console.settlement_job", job_id=answer.body["id"]))
    return redirect(url_for("console.settlements"))


@bp.get("/settlements/jobs/<uuid:job_id>")
@page("settlements")
def settlement_job(job_id: Any) -> Any:
    return job_page(job_id, "console/settlement_job.html", reload_when_done=True)


@bp.get("/settlements/<uuid:settlement_id>")
@page("settlements")
def settlement(settlement_id: Any) -> Any:
    answer = api("GET", f"/api/v1/settlements/{settlement_id}")
    if answer.status == 404:
        abort(404)
    items = api("GET", f"/api/v1/settlements/{settlement_id}/items")
    payouts = api("GET", f"/api/v1/settlements/{settlement_id}/payouts")
    return render_template("console/settlement.html", s=answer.body, items=items.body if items.ok else [],
                           payouts=payouts.body if payouts.ok else [])


@bp.post("/settlements/<uuid:settlement_id>/approve")
@page("settlements", "approve")
def approve_settlement(settlement_id: Any) -> Any:
    flash_answer(api("POST", f"/api/v1/settlements/{settlement_id}/approve"), "Approved.")
    return redirect(url_for("console.settlement", settlement_id=settlement_id))


@bp.post("/settlements/<uuid:settlement_id>/payout")
@page("settlements", "approve")
def pay_settlement(settlement_id: Any) -> Any:
    answer = api("POST", f"/api/v1/settlements/{settlement_id}/payout")
    if flash_answer(answer, "Payout started."):
        return redirect(url_for("console.settlement_job", job_id=answer.body["job"]["id"]))
    return redirect(url_for("console.settlement", settlement_id=settlement_id))


@bp.get("/settlements/<uuid:settlement_id>/statement.csv")
@page("settlements", "export")
def settlement_statement(settlement_id: Any) -> Any:
    return download(api("GET", f"/api/v1/settlements/{settlement_id}/statement.csv"))
