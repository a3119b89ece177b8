"""The console's default dates are the platform's (Asia/Kolkata): between 18:30 and 24:00 UTC the
IST day is already the next one (and on a month's last day, the next month). `make test-clock`
runs these at 18:59 UTC on a month's last day and at 23:59:30 IST on 31 March."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from ombaro.config import Settings
from tests.factories.console import signed_in


def _value(page: Any, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page.get_data(as_text=True))
    assert match, f"no {name} field on the page"
    return match.group(1)


def _around(fetch: Callable[[], Any]) -> tuple[Any, set[dt.date]]:
    """The page, and the platform's date before and after fetching it (midnight may fall between)."""
    zone = ZoneInfo(Settings.timezone)
    before = dt.datetime.now(zone).date()
    page = fetch()
    return page, {before, dt.datetime.now(zone).date()}


def _last_month(day: dt.date) -> str:
    return (day.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def _last_week(day: dt.date) -> tuple[str, str]:
    monday = day - dt.timedelta(days=day.weekday() + 7)
    return monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat()


def _last_30_days(day: dt.date) -> tuple[str, str]:
    return (day - dt.timedelta(days=29)).isoformat(), day.isoformat()


@pytest.mark.parametrize(("role", "path", "fields", "expected"), [
    ("hr_department", "/console/payroll", ("month",), lambda day: (_last_month(day),)),
    ("accounts_department", "/console/settlements", ("period_start", "period_end"), _last_week),
    ("it_department", "/console/dashboard", ("start", "end"), _last_30_days),
])
def test_default_dates_are_the_platforms(app: Any, engine: Engine, role: str, path: str, fields: tuple[str, ...],
                                         expected: Callable[[dt.date], tuple[str, ...]]) -> None:
    browser = signed_in(app, engine, role)
    page, days = _around(lambda: browser.get(path))
    assert page.status_code == 200
    shown = tuple(_value(page, name) for name in fields)
    assert shown in {expected(day) for day in days}, (path, shown, days)
