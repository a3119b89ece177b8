"""Dashboard: bookings, completions, cancellations and revenue over time, by city and vendor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import redirect, render_template, request, url_for

from web.console import bp
from web.console.charts import Series, bar_chart, legend, line_chart
from web.console.dispatch import today as platform_today  # the platform's date, not the machine's
from web.console.session import api, flash_answer, page


@bp.get("/dashboard")
@page("reports")
def dashboard() -> Any:
    today = platform_today()
    start = request.args.get("start") or (today - dt.timedelta(days=29)).isoformat()
    end = request.args.get("end") or today.isoformat()
    query = {"start": start, "end": end, **({"city": c} if (c := request.args.get("city")) else {})}
    summary = api("GET", "/api/v1/reports/dashboard")
    trend = api("GET", "/api/v1/reports/trend", query=query)
    days = trend.body["days"] if trend.ok else []
    labels = [d["day"][5:] for d in days]
    volume = [Series("Bookings", [d["bookings"] for d in days]),
              Series("Completed", [d["completed"] for d in days]),
              Series("Cancelled", [d["cancelled"] for d in days])]
    revenue = [Series("Revenue (₹)", [float(d["revenue"]) for d in days])]
    cities = trend.body["by_city"] if trend.ok else []
    return render_template(
        "console/dashboard.html", summary=summary.body if summary.ok else None, trend=trend, query=query,
        volume_chart=line_chart(labels, volume, title="bookings per day"), volume_legend=legend(volume),
        revenue_chart=line_chart(labels, revenue, title="revenue per day"),
        city_chart=bar_chart([c["city"] for c in cities], [c["bookings"] for c in cities]),
        vendors=trend.body["by_vendor"] if trend.ok else [])


@bp.post("/dashboard/refresh")
@page("reports", "create")
def refresh_dashboard() -> Any:
    answer = api("POST", "/api/v1/reports/refresh", json={})
    if flash_answer(answer, "Refresh started; the figures update when the job finishes."):
        return redirect(url_for("console.job", job_id=answer.body["id"]))
    return redirect(url_for("console.dashboard"))
