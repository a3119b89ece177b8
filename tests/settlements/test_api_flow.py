"""Settlements through the API with a real Celery worker: a dry run, a run, maker-checker
approval, a payout (development outbox), statements and the finance export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from tests.factories import settlements as f
from tests.factories.accounts import client_for, make_account
from tests.helpers import job_row, wait_until
from tests.services import Process, start_worker
from workers.app import enqueuer


@pytest.fixture
def engine(settle_engine: Engine) -> Engine:
    return settle_engine


@pytest.fixture
def app(app_factory: Callable[..., Any], settle_url: str) -> Any:
    return app_factory(DATABASE_URL=settle_url)


@pytest.fixture
def worker(spawn: Callable[..., Process], settle_url: str, redis_url: str) -> Iterator[Process]:
    yield start_worker(spawn, "settlements", env={"DATABASE_URL": settle_url})


def relay(engine: Engine, redis_url: str) -> None:
    """What the scheduler's relay does every 10 s: hand over jobs whose message went missing (the
    test Redis is shared by every test session on this machine)."""
    with Session(engine) as session, session.begin():
        commands.relay(session, enqueuer(redis_url), stale_seconds=2)


def wait_for_status(engine: Engine, job_id: Any, redis_url: str = "") -> dict[str, Any]:
    def done() -> Any:
        row = job_row(engine, job_id)
        if row["status"] in ("succeeded", "failed"):
            return row
        if redis_url:
            relay(engine, redis_url)
        return None

    return wait_until(done, timeout=60, interval=0.3, what=f"job {job_id}")


def counts(engine: Engine, vendor: Any) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM payment_settlements WHERE vendor_id = :v"),
                             {"v": vendor}).scalar_one(),
                conn.execute(text("SELECT count(*) FROM settlement_items WHERE vendor_id = :v"),
                             {"v": vendor}).scalar_one())


def test_run_approve_pay_and_read_statements(app: Any, engine: Engine, worker: Process,
                                             redis_url: str) -> None:
    maker, checker = make_account(engine, "accounts_department"), make_account(engine, "finance_department")
    other_finance = make_account(engine, "finance_department")
    vendor, stranger = make_account(engine, "vendor"), make_account(engine, "vendor")
    with engine.begin() as conn:
        customer = f.user(conn)
        conn.execute(text("UPDATE vendors SET commission_rate = 12.50, pan_number = 'ABCDE1234F' WHERE id = :v"),
                     {"v": vendor.id})
        for amount, at, method in (("1499.00", f.ist(2025, 6, 2, 0, 0, 0), "upi"),
                                   ("2500.50", f.ist(2025, 6, 8, 23, 59, 59), "credit_card"),
                                   ("800.00", f.ist(2025, 6, 5, 18), "cash")):
            booking = f.booking(conn, vendor.id, customer, total=Decimal(amount), day=at.date())
            f.payment(conn, booking, amount=Decimal(amount), at=at, method=method)
    body = {"period_start": "2025-06-02", "period_end": "2025-06-08", "vendor_ids": [str(vendor.id)]}
    runner = client_for(app, maker)

    dry = runner.post("/api/v1/settlements/runs", json={**body, "dry_run": True})
    assert dry.status_code == 202
    result = wait_for_status(engine, dry.json["id"], redis_url)
    assert result["status"] == "succeeded", result["error"]
    (planned,) = result["result"]["settlements"]
    assert counts(engine, vendor.id) == (0, 0)  # the dry run wrote nothing
    # 4799.50 sold; 3999.50 through the platform; commission 12.5% per line; TDS 0.1% (PAN) per line;
    # GST on the commission 9% CGST + 9% SGST (no GSTIN: the platform's state): 53.99 + 53.99.
    assert (planned["gross_amount"], planned["commission_amount"], planned["commission_gst_amount"],
            planned["tds_amount"], planned["tcs_amount"], planned["net_settlement_amount"]) == (
        "3999.50", "599.94", "107.98", "4.80", "0.00", "3286.78")

    run = runner.post("/api/v1/settlements/runs", json=body)
    assert run.status_code == 202
    assert wait_for_status(engine, run.json["id"], redis_url)["status"] == "succeeded"
    run_id = wait_for_status(engine, run.json["id"], redis_url)["result"]["run_id"]
    wait_until(lambda: relay(engine, redis_url) or client_for(app, checker).get(
        f"/api/v1/settlements/runs/{run_id}").json["status"] == "completed", timeout=60, what="the run's batches")
    summary = client_for(app, checker).get(f"/api/v1/settlements/runs/{run_id}").json
    assert summary["totals"]["net_settlement_amount"] in ("3286.78", 3286.78, "3286.78000")
    (settlement,) = client_for(app, vendor).get("/api/v1/settlements").json
    assert (settlement["status"], settlement["net_settlement_amount"]) == ("pending", "3286.78")
    assert settlement["vendor_name"] == client_for(app, checker).get("/api/v1/settlements").json[0]["vendor_name"]
    assert settlement["vendor_name"].startswith("Spa ")
    assert counts(engine, vendor.id) == (1, 3)
    # Re-running the period creates nothing.
    again = runner.post("/api/v1/settlements/runs", json=body)
    assert wait_for_status(engine, again.json["id"], redis_url)["status"] == "succeeded"
    assert counts(engine, vendor.id) == (1, 3)

    sid = settlement["id"]
    assert client_for(app, maker).post(f"/api/v1/settlements/{sid}/approve").status_code == 403  # no approve right
    approved = client_for(app, checker).post(f"/api/v1/settlements/{sid}/approve")
    assert approved.status_code == 200 and approved.json["status"] == "approved"
    assert client_for(app, other_finance).post(f"/api/v1/settlements/{sid}/approve").status_code == 409

    assert client_for(app, checker).post(f"/api/v1/settlements/{sid}/payout").status_code == 409  # no account yet
    account = client_for(app, checker).put(f"/api/v1/settlements/payout-accounts/{vendor.id}",
                                           json={"account_id": "acc_OmbaroTest001"})
    assert account.status_code == 200
    payout = client_for(app, checker).post(f"/api/v1/settlements/{sid}/payout")
    assert payout.status_code == 202, payout.json
    assert wait_for_status(engine, payout.json["job"]["id"], redis_url)["status"] == "succeeded"
    paid = client_for(app, vendor).get(f"/api/v1/settlements/{sid}").json
    assert paid["status"] == "completed" and paid["payment_reference"].startswith("trf_")
    assert client_for(app, checker).post(f"/api/v1/settlements/{sid}/payout").status_code == 409  # paid once

    statement = client_for(app, vendor).get(f"/api/v1/settlements/{sid}/statement.csv")
    assert statement.status_code == 200 and statement.mimetype == "text/csv"
    text_body = statement.get_data(as_text=True)
    head, _, body_lines = text_body.partition("\n\n")
    header = dict(csv.reader(io.StringIO(head)))
    lines = list(csv.DictReader(io.StringIO(body_lines)))
    assert header["net_settlement_amount"] == "3286.78"
    assert sum(Decimal(line["net_amount"]) for line in lines) == Decimal("3286.78")
    assert {line["collected_by"] for line in lines if line["kind"] in ("payment", "refund")} == {"platform", "vendor"}
    # The platform's invoice for its commission: 599.94 taxable, 53.99 CGST + 53.99 SGST, deducted.
    (invoice,) = [line for line in lines if line["kind"] == "commission_gst_invoice"]
    assert (invoice["commission_amount"], invoice["net_amount"]) == ("107.98", "-107.98")
    assert "CI2526/" in invoice["reason"]
    assert client_for(app, stranger).get(f"/api/v1/settlements/{sid}/statement.csv").status_code == 404
    assert client_for(app, stranger).get(f"/api/v1/settlements/{sid}/items").status_code == 404

    export = client_for(app, checker).get("/api/v1/settlements/export.csv?status=completed&period_from=2025-06-02"
                                          "&period_to=2025-06-08")
    exported = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert sid in {row["settlement_id"] for row in exported}
    assert all(row["status"] == "completed" for row in exported)


def test_manual_adjustment_needs_a_reason_and_lands_in_the_next_settlement(
        app: Any, engine: Engine, worker: Process, redis_url: str) -> None:
    accounts, vendor = make_account(engine, "accounts_department"), make_account(engine, "vendor")
    client = client_for(app, accounts)
    assert client.post("/api/v1/settlements/adjustments", json={"vendor_id": str(vendor.id),
                                                                 "amount": "250.00"}).status_code == 422
    made = client.post("/api/v1/settlements/adjustments", json={"vendor_id": str(vendor.id), "amount": "250.00",
                                                                 "reason": "April promotion borne by platform"})
    assert made.status_code == 201
    run = client.post("/api/v1/settlements/runs", json={"period_start": "2025-07-07", "period_end": "2025-07-13",
                                                        "vendor_ids": [str(vendor.id)]})
    job = wait_for_status(engine, run.json["id"], redis_url)
    wait_until(lambda: relay(engine, redis_url) or counts(engine, vendor.id)[0] == 1, timeout=60,
               what="the batch")
    (settlement,) = client_for(app, vendor).get("/api/v1/settlements").json
    assert (settlement["adjustment_amount"], settlement["net_settlement_amount"]) == ("250.00", "250.00")
    assert job["status"] == "succeeded"
    pending = client.get(f"/api/v1/settlements/adjustments?vendor_id={vendor.id}&pending=true").json
    assert pending == []


def test_bad_run_requests_are_refused_with_field_errors(app: Any, engine: Engine) -> None:
    client = client_for(app, make_account(engine, "finance_department"))
    backwards = client.post("/api/v1/settlements/runs", json={"period_start": "2025-07-13", "period_end": "2025-07-07"})
    assert backwards.status_code == 422 and "period_end" in backwards.json["errors"]
    too_long = client.post("/api/v1/settlements/runs", json={"period_start": "2025-01-01", "period_end": "2025-12-31"})
    assert too_long.status_code == 422
    unknown = client.post("/api/v1/settlements/runs", json={"period_start": "2025-07-07", "period_end": "2025-07-13",
                                                            "surprise": 1})
    assert unknown.status_code == 422 and "surprise" in unknown.json["errors"]
    rates = client.get("/api/v1/settlements/tds-rates").json
    assert {(r["pan_available"], r["rate_percent"], r["effective_from"]) for r in rates if r["section"] == "194-O"} == {
        (True, "0.750", "2020-10-01"), (True, "1.000", "2021-04-01"), (True, "0.100", "2024-10-01"),
        (False, "5.000", "2020-10-01")}

