"""A client generated from /openapi.json by openapi-python-client, without hand edits, runs the
README's flow against a real server (gunicorn and a Celery worker): log in, refresh the reports with
an Idempotency-Key, follow the job, read the dashboard; then a customer books, finance settles a
period and downloads the settlements as CSV."""

from __future__ import annotations

import datetime as dt
import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from sqlalchemy import text

from devtools.demo import DEMO_PASSWORD
from tests.contract.helpers import Server
from tests.helpers import wait_until

PACKAGE = "ombaro_ops_client"
# openapi-python-client reads PDFs only as application/octet-stream; the mapping is the generator's
# setting, the document keeps the true media type.
GENERATOR_CONFIG = "content_type_overrides:\n  application/pdf: application/octet-stream\n"


@pytest.fixture(scope="module")
def client_package(server: Server, tmp_path_factory: Any) -> Iterator[ModuleType]:
    directory = tmp_path_factory.mktemp("generated")
    spec = directory / "openapi.json"
    spec.write_bytes(requests.get(f"{server.url}/openapi.json", timeout=30).content)
    config = directory / "config.yml"
    config.write_text(GENERATOR_CONFIG + f"package_name_override: {PACKAGE}\n")
    bin_dir = Path(sys.executable).parent
    run = subprocess.run([str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
                          "--output-path", str(directory / PACKAGE), "--config", str(config), "--fail-on-warning"],
                         capture_output=True, text=True, timeout=300,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin"})  # it formats the code with ruff
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def api(package: ModuleType, name: str) -> ModuleType:
    """The generated module of one operation: `api.<tag>.<operationId>`."""
    tag, _, _ = name.partition("_")
    for candidate in (tag, name.rsplit("_", 2)[0]):
        try:
            return importlib.import_module(f"{package.__name__}.api.{candidate}.{name}")
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"no generated module for {name}")


def login(package: ModuleType, server: Server, role: str) -> Any:
    models = importlib.import_module(f"{package.__name__}.models")
    anonymous = package.Client(base_url=server.url)
    answer = api(package, "auth_login").sync_detailed(
        client=anonymous, body=models.Login(email=server.world.logins[role], password=DEMO_PASSWORD))
    assert answer.status_code == 200, answer.content
    return package.AuthenticatedClient(base_url=server.url, token=answer.parsed.access_token, timeout=60)


def wait_for_job(package: ModuleType, client: Any, job_id: uuid.UUID, server: Server, timeout: float = 120) -> Any:
    get_job = api(package, "jobs_get_job")

    def finished() -> Any:
        job = get_job.sync(client=client, job_id=job_id)
        return job if str(job.status) in ("succeeded", "failed", "cancelled") else None

    try:
        return wait_until(finished, timeout=timeout, interval=0.5, what=f"job {job_id}")
    except TimeoutError:
        with server.world.engine.connect() as conn:
            row = conn.execute(text("SELECT kind, status, enqueued_at, attempts, error FROM jobs WHERE id = :id"),
                               {"id": job_id}).one()
        raise AssertionError(f"job {job_id} unfinished: {row}\n{server.processes[-1].output()[-3000:]}") from None


def test_generated_client_runs_the_readme_flow_books_settles_and_downloads_csv(
    client_package: ModuleType, server: Server,
) -> None:
    package, models = client_package, importlib.import_module(f"{client_package.__name__}.models")
    admin = login(package, server, "super_admin")

    # The README: a refresh under an Idempotency-Key is one job, however often it is sent.
    refresh = api(package, "reports_refresh")
    key = f'"contract-{uuid.uuid4()}"'
    first = refresh.sync_detailed(client=admin, body=models.Refresh(), idempotency_key=key)
    again = refresh.sync_detailed(client=admin, body=models.Refresh(), idempotency_key=key)
    assert first.status_code == again.status_code == 202
    assert first.parsed.id == again.parsed.id and again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Location"].endswith(f"/api/v1/jobs/{first.parsed.id}")
    assert str(wait_for_job(package, admin, first.parsed.id, server).status) == "succeeded"
    dashboard = api(package, "reports_dashboard").sync(client=admin)
    assert dashboard.refreshed_at is not None and dashboard.age_seconds is not None

    # A customer books a spa visit at the demo vendor, a week or more ahead on a day it is open.
    engine = server.world.engine
    with engine.connect() as conn:
        vendor_id, hours, offered = conn.execute(text(
            "SELECT v.id, v.operating_hours, v.services_offered FROM vendors v JOIN auth.users u ON u.id = v.id "
            "WHERE u.email = :email"), {"email": server.world.logins["vendor"]}).one()
        service_id, durations = conn.execute(text(
            "SELECT id, duration_options FROM services WHERE id = ANY(:offered) AND is_active "
            "AND cardinality(duration_options) > 0 ORDER BY code LIMIT 1"), {"offered": list(offered)}).one()
        today = conn.execute(text("SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date")).scalar_one()
    day = next(today + dt.timedelta(days=n) for n in range(7, 14)
               if not (hours or {}).get(day_name(today + dt.timedelta(days=n)), {}).get("closed"))
    customer = login(package, server, "customer")
    booked = api(package, "bookings_create_booking").sync_detailed(client=customer, body=models.CreateBooking(
        vendor_id=vendor_id, booking_type=models.CreateBookingBookingType.SPA_VISIT, booking_date=day,
        booking_time="11:00", items=[models.BookingItemRequest(service_id=service_id, duration=min(durations))]))
    assert booked.status_code == 201, booked.content
    assert booked.parsed.booking_date == day and str(booked.parsed.status) == "confirmed"
    assert isinstance(booked.parsed.total_amount, str) and float(booked.parsed.total_amount) > 0

    # Finance settles the last four weeks; the run fans out batch jobs, then the settlements exist.
    finance = login(package, server, "finance_department")
    run = api(package, "settlements_create_run").sync_detailed(client=finance, body=models.SettlementRunRequest(
        period_start=today - dt.timedelta(days=28), period_end=today - dt.timedelta(days=1)))
    assert run.status_code == 202, run.content
    assert str(wait_for_job(package, finance, run.parsed.id, server).status) == "succeeded"
    listed = api(package, "settlements_list_settlements")
    settlements = wait_until(lambda: listed.sync(client=finance), timeout=120, interval=0.5,
                             what="the run's batches to write settlements")
    assert all(isinstance(s.net_settlement_amount, str) for s in settlements)

    csv = api(package, "settlements_export_settlements").sync_detailed(client=finance)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = csv.parsed.strip().splitlines()
    assert len(lines) >= len(settlements) + 1 and "net_settlement_amount" in lines[0]
    assert any(str(settlements[0].id) in line for line in lines[1:])


def day_name(day: dt.date) -> str:
    return ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[day.weekday()]
