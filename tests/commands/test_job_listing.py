"""commands.list_jobs reads per kind (docs/benchmarks.md): it must list exactly what one query over
the whole log would, newest first, with every filter, for the owner and under the policies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from tests.factories.accounts import client_for, make_account

pytestmark = pytest.mark.db

KINDS = ("reports.refresh", "system.ping", "payroll.run", "settlements.run")


@pytest.fixture
def log(engine: Engine, clean_jobs: None) -> list[dict[str, Any]]:
    """40 jobs of four kinds, interleaved in time, some failed."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (kind, status, created_at) "
            "SELECT (CAST(:kinds AS text[]))[1 + g % 4], CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'succeeded' END, "
            "now() - g * interval '1 minute' FROM generate_series(1, 40) AS g"), {"kinds": list(KINDS)})
        return [dict(r) for r in conn.execute(text(
            "SELECT id, kind, status, created_at FROM jobs ORDER BY created_at DESC, id DESC")).mappings()]


def expected(log: list[dict[str, Any]], *, kinds: tuple[str, ...] = KINDS, statuses: tuple[str, ...] = (),
             before: dt.datetime | None = None, limit: int = 50) -> list[str]:
    return [str(j["id"]) for j in log if j["kind"] in kinds and (not statuses or j["status"] in statuses)
            and (before is None or j["created_at"] < before)][:limit]


def test_the_owner_lists_what_one_query_would(engine: Engine, log: list[dict[str, Any]]) -> None:
    before = log[12]["created_at"]
    cases = [({}, {}), ({"limit": 7}, {"limit": 7}), ({"statuses": ["failed"]}, {"statuses": ("failed",)}),
             ({"before": before, "limit": 5}, {"before": before, "limit": 5}),
             ({"kinds": ["payroll.run", "system.ping"], "limit": 6}, {"kinds": ("payroll.run", "system.ping"),
                                                                      "limit": 6})]
    with Session(engine) as session:
        for arguments, oracle in cases:
            listed = [str(j.id) for j in commands.list_jobs(session, **arguments)]
            assert listed == expected(log, **oracle), arguments


def test_it_lists_its_kinds_newest_first_and_pages(app: Any, engine: Engine, log: list[dict[str, Any]]) -> None:
    it = client_for(app, make_account(engine, "it_department"))  # reports.refresh and system.ping
    mine = ("reports.refresh", "system.ping")
    assert [j["id"] for j in it.get("/api/v1/jobs?limit=8").json] == expected(log, kinds=mine, limit=8)
    assert [j["id"] for j in it.get("/api/v1/jobs?status=failed").json] == expected(
        log, kinds=mine, statuses=("failed",))
    before = log[20]["created_at"].isoformat()
    paged = it.get("/api/v1/jobs", query_string={"before": before, "limit": 3}).json
    assert [j["id"] for j in paged] == expected(log, kinds=mine, before=log[20]["created_at"], limit=3)
    assert it.get("/api/v1/jobs?kind=payroll.run").json == []
