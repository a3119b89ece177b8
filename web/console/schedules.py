"""Schedules: list with next firing, enable/disable, edit the trigger, run now."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for

from web.console import bp
from web.console.session import api, flash_answer, page


@bp.get("/schedules")
@page("schedules")
def schedules() -> Any:
    answer = api("GET", "/api/v1/schedules")
    return render_template("console/schedules.html", schedules=answer.body if answer.ok else [], answer=answer)


@bp.post("/schedules/<uuid:schedule_id>/<any(enable, disable):action>")
@page("schedules", "update")
def toggle_schedule(schedule_id: Any, action: str) -> Any:
    flash_answer(api("POST", f"/api/v1/schedules/{schedule_id}/{action}"), f"Schedule {action}d.")
    return redirect(url_for("console.schedules"))


@bp.post("/schedules/<uuid:schedule_id>/trigger")
@page("schedules", "update")
def edit_schedule(schedule_id: Any) -> Any:
    cron, interval = request.form.get("cron", "").strip(), request.form.get("interval_seconds", "").strip()
    # The API takes a JSON integer (not a string of digits); anything else goes as typed, to be refused.
    seconds: Any = int(interval) if interval.isdigit() else interval or None
    body: dict[str, Any] = {"cron": cron} if cron else {"interval_seconds": seconds}
    flash_answer(api("PATCH", f"/api/v1/schedules/{schedule_id}", json=body),
                 "Trigger changed; the scheduler applies it at its next reload.")
    return redirect(url_for("console.schedules"))


@bp.post("/schedules/<uuid:schedule_id>/run")
@page("schedules", "update")
def run_schedule(schedule_id: Any) -> Any:
    answer = api("POST", f"/api/v1/schedules/{schedule_id}/run")
    if flash_answer(answer, "Fired now."):
        return redirect(url_for("console.job", job_id=answer.body["id"]))
    return redirect(url_for("console.schedules"))
