"""The baseline for bench/api.py: a bare Flask route answering the same JSON shape as a submitted
command, with no validation, database or broker behind it."""

from __future__ import annotations

import datetime as dt
import uuid

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/reports/refresh")
    def refresh():
        job_id = uuid.uuid4()
        body = {"attempts": 0, "created_at": dt.datetime.now(dt.UTC).isoformat(), "error": None,
                "finished_at": None, "id": str(job_id), "kind": "reports.refresh", "max_attempts": 3,
                "params": {}, "progress": 0.0, "progress_message": None, "requested_by": None, "result": None,
                "scheduled_for": None, "started_at": None, "status": "queued"}
        return jsonify(body), 202, {"Location": f"/api/v1/jobs/{job_id}"}

    return app
