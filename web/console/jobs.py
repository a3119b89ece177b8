"""Jobs: every command and scheduled firing, live progress, result or error, retry."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from ombaro.access.permissions import job_permission
from web.console import bp
from web.console.session import allowed, api, flash_answer, page

LIVE = ("queued", "running")


def duration(job: dict[str, Any]) -> str:
    if not job.get("started_at"):
        return ""
    started = dt.datetime.fromisoformat(job["started_at"])
    finished = dt.datetime.fromisoformat(job["finished_at"]) if job.get("finished_at") else dt.datetime.now(dt.UTC)
    seconds = max(0, int((finished - started).total_seconds()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def may_retry(job: dict[str, Any]) -> bool:
    return job["status"] in ("failed", "cancelled") and allowed(*job_permission(job["kind"]))


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.get("/jobs")
@page("jobs")
def jobs() -> Any:
    query = {"kind": [k for k in request.args.getlist("kind") if k], "status": request.args.getlist("status"),
             "limit": request.args.get("limit", "50")}
    answer = api("GET", "/api/v1/jobs", query=query)
    rows = answer.body if answer.ok else []
    arguments: dict[str, Any] = {**request.args.to_dict(flat=False), "fragment": 1}
    refresh_url = url_for("console.jobs", **arguments)
    context = {"jobs": rows, "answer": answer, "query": query, "duration": duration, "may_retry": may_retry,
               "live": any(j["status"] in LIVE for j in rows), "refresh_url": refresh_url}
    template = "console/jobs_rows.html" if request.args.get("fragment") else "console/jobs.html"
    return render_template(template, **context)


@bp.get("/jobs/<uuid:job_id>")
@page("jobs")
def job(job_id: Any) -> Any:
    return job_page(job_id, "console/job_live.html" if request.args.get("fragment") else "console/job.html")


def job_page(job_id: Any, template: str, **extra: Any) -> Any:
    """A job's page (or its live part): the generic one, or a capability's that adds its outcome."""
    answer = api("GET", f"/api/v1/jobs/{job_id}")
    if answer.status == 404:
        abort(404)
    current = answer.body
    return render_template(template, job=current, live=current["status"] in LIVE, duration=duration,
                           may_retry=may_retry, pretty=pretty, **extra)


@bp.post("/jobs/<uuid:job_id>/retry")
@page("jobs")
def retry(job_id: Any) -> Any:
    flash_answer(api("POST", f"/api/v1/jobs/{job_id}/retry"), "The job is queued again.")
    return redirect(url_for("console.job", job_id=job_id))
