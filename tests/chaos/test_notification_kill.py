"""A worker killed while Twilio holds a booking notification's SMS it has accepted: under the
default settings the delivery the dead attempt claimed is in doubt once that attempt's lease is
dead, and the reconciler finds it at Twilio and records it within two minutes of the kill. The
customer gets exactly one SMS (lost = 0, doubled = 0)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.messaging import Runtime
from tests.campaigns.provider_server import ProviderServer
from tests.chaos.helpers import defaults, measure, only_schedules, start_beat
from tests.factories.campaigns import a_city, add_customers
from tests.factories.notifications import a_booking, a_vendor, tomorrow_noon
from tests.helpers import wait_until
from tests.services import Process, start_worker

pytestmark = pytest.mark.db


def _sms(engine: Engine, booking: Any) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT d.status, d.provider_message_id, d.sending_job_id, d.sending_attempt FROM message_deliveries AS d "
            "JOIN notification_events AS e ON e.id = d.event_id WHERE e.booking_id = :b AND d.channel = 'sms'"),
            {"b": booking}).mappings().first()
    return dict(row) if row else None


@pytest.mark.chaos
def test_worker_killed_mid_notification_the_sms_in_doubt_is_resolved_within_two_minutes(
        spawn: Callable[..., Process], messaging_env: dict[str, str], rt: Runtime, server: ProviderServer,
        redis_url: str, camp_engine: Engine) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": False, "sms": True})
    booking = a_booking(rt.engine, customer.id, a_vendor(rt.engine), starts=tomorrow_noon())
    only_schedules(camp_engine, "campaigns.reconcile", "notifications.dispatch")
    env = defaults({**messaging_env, "OMBARO_PROVIDER_CONCURRENCY": "1", "REDIS_URL": redis_url})
    env.pop("OMBARO_PROVIDER_TIMEOUT_SECONDS")  # the default (10 s): the held call outlives the kill
    server.add_fault("twilio", "hold", accept=True, count=1, seconds=300)  # accepted, never answered
    doomed = start_worker(spawn, "doomed", concurrency=1, env=env)
    beat = start_beat(spawn, "beat", env)  # notifications every 30 s, the reconciler every minute
    beat.wait_for("scheduler leading")
    with rt.engine.begin() as conn:  # the database records the event with the confirmation
        conn.execute(text("UPDATE bookings SET status = 'confirmed' WHERE id = :b"), {"b": booking})
    wait_until(lambda: server.holding == 1, timeout=90, what="the held SMS")
    doomed.stop(signal.SIGKILL)  # between Twilio's acceptance and the delivery's update
    killed_at = time.monotonic()
    claimed = _sms(rt.engine, booking)
    assert claimed is not None and claimed["status"] == "sending"
    assert claimed["sending_job_id"] is not None and claimed["sending_attempt"] == 1  # the claim names the attempt
    start_worker(spawn, "rescuer", concurrency=1, env=env)

    def resolved() -> bool:
        row = _sms(rt.engine, booking)
        return row is not None and row["status"] == "sent"

    wait_until(resolved, timeout=180, interval=1, what="the SMS in doubt resolved")
    resolved_after = measure("booking notification in doubt resolved after kill -9", time.monotonic() - killed_at)
    assert resolved_after < 120
    to_customer = [m for m in server.accepted("twilio") if m.to == customer.mobile]
    assert len(to_customer) == 1  # lost = 0, doubled = 0
    assert _sms(rt.engine, booking)["provider_message_id"] == to_customer[0].sid  # type: ignore[index]
