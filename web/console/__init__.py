"""The operations console at /console: server-rendered pages for staff over the same API and
permissions (docs/console.md). Every read and every action is an in-process call to /api/v1 made
with the signed-in user's own access token, so the console can show or do nothing the API would
refuse that user."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

from web.console import (  # noqa: E402,F401  (each module adds its pages to `bp`)
    campaigns,
    dashboard,
    dispatch,
    jobs,
    payroll,
    schedules,
    session,
    settlements,
)
