"""End to end with a real Celery worker on the dispatch queue: a customer books, the worker finds
the therapist; a vendor dispatches its day in one batch."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from tests.factories import dispatch as factory
from tests.factories.accounts import client_for, make_account
from tests.factories.bookings import Shop, booking_body, next_weekday
from tests.helpers import wait_for_status
from tests.services import Process


def dispatch_worker(spawn: Callable[..., Process]) -> Process:
    worker = spawn("dispatch-worker", sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=INFO",
                   "-Q", "dispatch", "--concurrency=1", "--without-heartbeat", "--without-gossip", "--without-mingle",
                   "-n", f"dispatch-{secrets.token_hex(3)}@%h")
    worker.wait_for("ready.")
    return worker


def test_a_booking_is_dispatched_by_a_worker_and_a_vendor_batches_its_day(
    app: Any, engine: Engine, spawn: Callable[..., Process],
) -> None:
    vendor = make_account(engine, "vendor")
    factory.vendor(engine, vendor_id=vendor.id)
    service_id, code = factory.service(engine, durations=(60, 90))
    therapist = make_account(engine, "therapist", vendor_id=vendor.id)
    factory.therapist(engine, vendor.id, codes=[code], therapist_id=therapist.therapist_id)
    helper = factory.therapist(engine, vendor.id, codes=[code])
    customer = make_account(engine, "customer")
    dispatch_worker(spawn)

    shop = Shop(vendor, therapist, service_id, code, factory.addon(engine))
    booked = client_for(app, customer).post("/api/v1/bookings", json=booking_body(shop)).json
    job = wait_for_status(engine, booked["dispatch_job_id"])
    assert job["status"] == "succeeded" and job["result"]["outcome"] == "assigned", job
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM bookings WHERE id = :b"), {"b": booked["id"]}).scalar_one() \
            == "assigned"

    day = next_weekday(4)
    for at in ("10:00", "10:15"):
        factory.booking(engine, vendor_id=vendor.id, customer_id=factory.customer(engine), day=day, at=at,
                        service_id=service_id)
    batch = client_for(app, vendor).post("/api/v1/dispatch/batch", json={"date": day.isoformat(),
                                                                        "vendor_id": str(vendor.id)})
    assert batch.status_code == 202
    result = wait_for_status(engine, batch.json["id"])
    assert result["status"] == "succeeded", result
    assert result["result"]["assigned"] == 2 and result["result"]["unassigned"] == 0
    assert result["result"]["total_travel_km"] <= result["result"]["greedy_total_travel_km"]
    assert helper  # both therapists were needed: the two bookings overlap
    other = make_account(engine, "vendor")
    refused = client_for(app, other).post("/api/v1/dispatch/batch", json={"date": day.isoformat(),
                                                                         "vendor_id": str(vendor.id)})
    assert refused.status_code == 403
