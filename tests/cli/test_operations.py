"""The commands that start work (settle, payroll, refresh, prune, schedules, campaign send) submit
the same job kinds as the API and wait for a real Celery worker. They run in a database of this
module's own: a settlement or a prune reaches every row it may, so they keep off the session's."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.cli.helpers import Ran
from tests.factories import settlements as f
from tests.factories.payroll import add_structure, new_employee
from tests.helpers import job_row
from tests.services import Database, Process, start_worker


@pytest.fixture(scope="module")
def ops_db(own_database: Callable[[], Database]) -> Database:
    return own_database()


@pytest.fixture(scope="module")
def ops_url(ops_db: Database) -> str:
    return ops_db.url


@pytest.fixture(scope="module")
def ops_engine(ops_db: Database) -> Engine:
    return ops_db.engine


@pytest.fixture(scope="module")
def ops_worker(ops_url: str, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Process]:
    logs: Path = tmp_path_factory.mktemp("cli-worker")

    def spawn(name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        return Process(list(args), {**service_env, **(env or {})}, logs / f"{name}.log")

    worker = start_worker(spawn, "cli", env={"DATABASE_URL": ops_url})
    yield worker
    worker.stop()


@pytest.fixture
def ops(ops_url: str, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Ran]) -> Callable[..., Ran]:
    """The CLI pointed at this module's database."""
    monkeypatch.setenv("DATABASE_URL", ops_url)
    return cli


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_settle_dry_run_runs_through_a_worker_and_prints_what_it_would_create(
        ops_engine: Engine, ops_worker: Process, ops: Callable[..., Ran]) -> None:
    with ops_engine.begin() as conn:
        vendor = f.vendor(conn, commission_rate=Decimal("12.50"))
        customer = f.user(conn)
        for amount, at, method in (("1499.00", f.ist(2025, 6, 2, 0, 0, 0), "upi"),
                                   ("2500.50", f.ist(2025, 6, 8, 23, 59, 59), "credit_card"),
                                   ("800.00", f.ist(2025, 6, 5, 18), "cash")):
            booking = f.booking(conn, vendor, customer, total=Decimal(amount), day=at.date())
            f.payment(conn, booking, amount=Decimal(amount), at=at, method=method)

    ran = ops("settle", "--period", "2025-06-02..2025-06-08", "--dry-run", "--vendor", str(vendor), "--json")
    assert ran.code == 0, ran.err
    job = ran.json()
    assert (job["kind"], job["status"], job["requested_by"]) == ("settlements.run", "succeeded", None)
    assert job["params"] == {"period_start": "2025-06-02", "period_end": "2025-06-08", "dry_run": True,
                             "vendor_ids": [str(vendor)]}  # what POST /api/v1/settlements/runs submits
    (planned,) = job["result"]["settlements"]
    # GST on the commission (9% CGST + 9% SGST of 599.94: 53.99 each) is deducted too (docs/settlements.md).
    assert (planned["gross_amount"], planned["commission_amount"], planned["commission_gst_amount"],
            planned["tds_amount"], planned["net_settlement_amount"]) == ("3999.50", "599.94", "107.98", "4.80",
                                                                         "3286.78")
    assert count(ops_engine, "SELECT count(*) FROM payment_settlements WHERE vendor_id = :v", v=vendor) == 0

    readable = ops("settle", "--period", "2025-06-02..2025-06-08", "--dry-run", "--vendor", str(vendor))
    assert readable.code == 0
    assert "NET_SETTLEMENT_AMOUNT" in readable.out and "3286.78" in readable.out


def test_payroll_dry_run_runs_through_a_worker_and_writes_nothing(
        ops_engine: Engine, ops_worker: Process, ops: Callable[..., Ran]) -> None:
    employee = new_employee(ops_engine, joining=dt.date(2025, 4, 1))
    add_structure(ops_engine, employee, dt.date(2025, 4, 1), basic="20000", hra="8000", pt_state="MH")

    ran = ops("payroll", "--month", "2026-06", "--dry-run", "--employee", str(employee), "--json")
    assert ran.code == 0, ran.err
    job = ran.json()
    assert (job["kind"], job["params"]) == ("payroll.run", {"year": 2026, "month": 6, "dry_run": True,
                                                            "employee_ids": [str(employee)]})
    result = job["result"]
    assert result["dry_run"] is True and result["employees"] == 1 and result["failures"] == []
    (line,) = result["changes"]
    assert line["employee_id"] == str(employee) and Decimal(line["gross"]) == Decimal("28000.00")
    assert count(ops_engine, "SELECT count(*) FROM salary_records WHERE employee_id = :e", e=employee) == 0


@pytest.mark.parametrize("argv", [
    ("settle", "--period", "2025-06-08..2025-06-02"),  # ends before it starts
    ("settle", "--period", "2025-01-01..2025-12-31"),  # longer than a settlement period may be
    ("settle", "--period", "June"),
    ("settle", "--period", "2025-06-01..2025-06-07", "--vendor", "not-a-uuid"),
    ("payroll", "--month", "2026-13"),
    ("payroll", "--month", "June"),
    ("refresh", "--view", "no_such_view"),
])
def test_bad_arguments_exit_2_and_submit_nothing(ops_engine: Engine, ops: Callable[..., Ran],
                                                 argv: tuple[str, ...]) -> None:
    before = count(ops_engine, "SELECT count(*) FROM jobs")
    ran = ops(*argv)
    assert ran.code == 2 and ran.out == ""
    assert ran.err.strip()  # says what is wrong
    assert count(ops_engine, "SELECT count(*) FROM jobs") == before


def test_refresh_runs_the_reports_refresh_job(ops_engine: Engine, ops_worker: Process,
                                              ops: Callable[..., Ran]) -> None:
    ran = ops("refresh", "--view", "dashboard_stats", "--json")
    assert ran.code == 0, ran.err
    assert (ran.json()["kind"], ran.json()["params"]) == ("reports.refresh", {"views": ["dashboard_stats"]})
    assert count(ops_engine, "SELECT count(*) FROM view_refreshes WHERE job_id = :j", j=ran.json()["id"]) == 1


def test_prune_runs_the_locations_prune_job(ops_engine: Engine, ops_worker: Process,
                                            ops: Callable[..., Ran]) -> None:
    ran = ops("prune")
    assert ran.code == 0, ran.err
    (job_id,) = [line.split()[1] for line in ran.out.splitlines() if line.startswith("id ")]
    row = job_row(ops_engine, job_id)
    assert (row["kind"], row["status"]) == ("locations.prune", "succeeded") and row["result"]


def test_schedules_list_disable_enable_and_run(ops_engine: Engine, ops_worker: Process,
                                               ops: Callable[..., Ran]) -> None:
    name = f"cli-test.refresh-{uuid.uuid4().hex[:6]}"
    with ops_engine.begin() as conn:
        schedule_id = conn.execute(text(
            "INSERT INTO schedules (name, kind, params, cron) VALUES (:n, 'reports.refresh', "
            "'{\"views\": [\"daily_booking_stats\"]}', '0 3 * * *') RETURNING id"), {"n": name}).scalar_one()

    listed = {s["name"]: s for s in ops("schedules", "list", "--json").json()}
    assert listed[name]["enabled"] is True and listed[name]["next_fire_time"] is not None
    table = ops("schedules", "list").out
    assert table.splitlines()[0].split()[:3] == ["NAME", "KIND", "TRIGGER"] and name in table

    disabled = ops("schedules", "disable", name, "--json")
    assert disabled.code == 0 and disabled.json()["next_fire_time"] is None
    assert count(ops_engine, "SELECT count(*) FROM schedules WHERE id = :i AND NOT enabled", i=schedule_id) == 1
    enabled = ops("schedules", "enable", str(schedule_id))  # by id as well as by name
    assert enabled.code == 0 and f"{name} enabled" in enabled.out
    assert count(ops_engine, "SELECT count(*) FROM schedules WHERE id = :i AND enabled", i=schedule_id) == 1

    ran = ops("schedules", "run", name, "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["status"] == "succeeded"
    assert job_row(ops_engine, ran.json()["id"])["schedule_id"] == schedule_id

    unknown = ops("schedules", "disable", "no-such-schedule")
    assert unknown.code == 2 and "no schedule no-such-schedule" in unknown.err


def test_campaign_send_of_an_unknown_campaign_exits_2(ops_engine: Engine, ops: Callable[..., Ran]) -> None:
    missing = uuid.uuid4()
    before = count(ops_engine, "SELECT count(*) FROM jobs")
    ran = ops("campaign", "send", str(missing))
    assert ran.code == 2 and f"no campaign {missing}" in ran.err
    assert count(ops_engine, "SELECT count(*) FROM jobs") == before
