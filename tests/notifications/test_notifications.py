"""Booking notifications: events captured by the database when a booking, an assignment or a
payment changes, sent once to the channels each person allows; reminders two hours before; the
caller's notifications and the development outbox through the API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro import messaging
from ombaro.campaigns import reconcile
from ombaro.messaging import Runtime
from tests.campaigns.helpers import execute, submit
from tests.campaigns.provider_server import ProviderServer
from tests.factories.accounts import client_for, make_account
from tests.factories.campaigns import a_city, add_customers
from tests.factories.notifications import IST, a_booking, a_vendor, tomorrow_noon

pytestmark = pytest.mark.db


def dispatch(rt: Runtime) -> dict[str, Any]:
    job = submit(rt, "notifications.dispatch", {}, key=str(uuid.uuid4()))
    assert execute(rt, job) == "succeeded"
    with rt.engine.connect() as conn:
        return conn.execute(text("SELECT result FROM jobs WHERE id = :id"), {"id": job}).scalar_one()


def event_deliveries(engine: Engine, booking: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT e.type, d.user_id, d.channel, d.status FROM message_deliveries AS d "
            "JOIN notification_events AS e ON e.id = d.event_id WHERE e.booking_id = :b ORDER BY e.id, d.channel"),
            {"b": booking}).mappings()]


def test_confirmed_booking_notifies_the_customer_on_the_channels_they_allow(rt: Runtime,
                                                                             server: ProviderServer) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": True, "sms": False})
    booking = a_booking(rt.engine, customer.id, a_vendor(rt.engine), starts=tomorrow_noon())
    with rt.engine.begin() as conn:  # whoever confirms it, the database records the event
        conn.execute(text("UPDATE bookings SET status = 'confirmed' WHERE id = :b"), {"b": booking})
    dispatch(rt)
    assert [(d["type"], d["channel"], d["status"]) for d in event_deliveries(rt.engine, booking)] == [
        ("booking_confirmed", "email", "sent"), ("booking_confirmed", "in_app", "delivered")]
    (mail,) = server.accepted("sendgrid")
    assert mail.to == customer.email and mail.subject == "Booking confirmed"
    assert "is confirmed" in mail.body and server.accepted("twilio") == []
    with rt.engine.connect() as conn:
        note = conn.execute(text("SELECT type, title, channels, data FROM notifications WHERE user_id = :u"),
                            {"u": customer.id}).mappings().one()
    assert (note["type"], note["title"], note["data"]["booking_id"]) == ("booking_confirmed", "Booking confirmed",
                                                                         str(booking))
    # Dispatched again (a redelivered job, the next tick): nothing is sent twice.
    dispatch(rt)
    assert len(server.accepted("sendgrid")) == 1 and len(event_deliveries(rt.engine, booking)) == 2


def test_assignment_tells_customer_and_therapist_and_arrival_tells_the_customer(rt: Runtime,
                                                                                server: ProviderServer) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": False, "sms": True})
    vendor = a_vendor(rt.engine)
    booking = a_booking(rt.engine, customer.id, vendor, starts=tomorrow_noon(), status="confirmed")
    therapist_user = uuid.uuid4()
    with rt.engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :e, '!')"),
                     {"id": therapist_user, "e": f"t.{therapist_user.hex[:8]}@example.test"})
        conn.execute(text("INSERT INTO user_profiles (id, name, mobile, role) VALUES (:id, 'Meera', :m, 'therapist')"),
                     {"id": therapist_user, "m": f"+9197{therapist_user.int % 10**8:08d}"})
        therapist = conn.execute(text(
            "INSERT INTO therapists (vendor_id, user_id, name, email, mobile) VALUES (:v, :u, 'Meera Nair', :e, :m) "
            "RETURNING id"), {"v": vendor, "u": therapist_user, "e": f"t.{therapist_user.hex[:8]}@example.test",
                              "m": f"+9197{therapist_user.int % 10**8:08d}"}).scalar_one()
        service = conn.execute(text("INSERT INTO services (code, name, category, base_price_60min) "
                                    "VALUES (:c, 'Swedish', 'relaxation', 1500) RETURNING id"),
                               {"c": f"S{uuid.uuid4().hex[:6]}"}).scalar_one()
        assignment = conn.execute(text(
            "INSERT INTO therapist_assignments (booking_id, therapist_id, vendor_id, customer_id, service_id, "
            "assignment_date, assignment_time, location_address, estimated_duration) VALUES (:b, :t, :v, :c, :s, "
            "current_date, '12:00', 'MG Road', 60) RETURNING id"),
            {"b": booking, "t": therapist, "v": vendor, "c": customer.id, "s": service}).scalar_one()
    dispatch(rt)
    conn_rows = event_deliveries(rt.engine, booking)
    assert Counter((d["user_id"] == customer.id, d["channel"]) for d in conn_rows) == {
        (True, "in_app"): 1, (True, "sms"): 1, (False, "in_app"): 1, (False, "sms"): 1, (False, "email"): 1}
    texts = {m.to: m.body for m in server.accepted("twilio")}
    assert texts[customer.mobile].startswith("OMBARO: Meera Nair will take care of your booking")
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE therapist_assignments SET status = 'reached' WHERE id = :a"), {"a": assignment})
    dispatch(rt)
    arrived = [d for d in event_deliveries(rt.engine, booking) if d["type"] == "therapist_arrived"]
    assert {(d["user_id"], d["channel"]) for d in arrived} == {(customer.id, "in_app"), (customer.id, "sms")}


def test_events_about_old_bookings_are_recorded_not_sent(rt: Runtime, server: ProviderServer) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city())
    booking = a_booking(rt.engine, customer.id, a_vendor(rt.engine),
                        starts=dt.datetime.now(IST) - dt.timedelta(days=5), status="confirmed")
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET status = 'completed' WHERE id = :b"), {"b": booking})
    assert dispatch(rt)["stale_events"] >= 1
    assert event_deliveries(rt.engine, booking) == []


def test_reminder_two_hours_before_once(rt: Runtime, server: ProviderServer) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": True, "sms": False})
    vendor = a_vendor(rt.engine)
    now = dt.datetime.now(dt.UTC)
    long_ago = now - dt.timedelta(days=2)
    soon = a_booking(rt.engine, customer.id, vendor, starts=now + dt.timedelta(minutes=90), status="confirmed",
                     created=long_ago)
    later = a_booking(rt.engine, customer.id, vendor, starts=now + dt.timedelta(hours=3), status="confirmed",
                      created=long_ago)
    just_booked = a_booking(rt.engine, customer.id, vendor, starts=now + dt.timedelta(minutes=80),
                            status="confirmed")
    first = submit(rt, "notifications.reminders", {}, key=str(uuid.uuid4()))
    assert execute(rt, first) == "succeeded"
    again = submit(rt, "notifications.reminders", {}, key=str(uuid.uuid4()))
    assert execute(rt, again) == "succeeded"
    reminded = [d for d in event_deliveries(rt.engine, soon) if d["type"] == "reminder"]
    assert {(d["channel"], d["status"]) for d in reminded} == {("email", "sent"), ("in_app", "delivered")}
    assert len(reminded) == 2  # once, though the scan ran twice
    assert event_deliveries(rt.engine, later) == [] and event_deliveries(rt.engine, just_booked) == []


def test_caller_sees_and_marks_only_their_own_notifications(app_factory: Any, messaging_env: dict[str, str],
                                                             camp_engine: Engine) -> None:
    app = app_factory(**messaging_env)
    mine, theirs = make_account(camp_engine, "customer"), make_account(camp_engine, "customer")
    with camp_engine.begin() as conn:
        ids = {}
        for who in (mine, theirs):
            ids[who.id] = conn.execute(text(
                "INSERT INTO notifications (user_id, type, title, message) VALUES (:u, 'reminder', 'T', 'M') "
                "RETURNING id"), {"u": who.id}).scalar_one()
    client = client_for(app, mine)
    listed = client.get("/api/v1/notifications?unread=true")
    assert listed.status_code == 200 and [n["id"] for n in listed.json] == [str(ids[mine.id])]
    assert client.post(f"/api/v1/notifications/{ids[theirs.id]}/read").status_code == 404
    read = client.post(f"/api/v1/notifications/{ids[mine.id]}/read")
    assert read.status_code == 200 and read.json["is_read"] is True and read.json["read_at"]
    assert client.get("/api/v1/notifications?unread=true").json == []
    assert client_for(app, theirs).post("/api/v1/notifications/read-all").json == {"marked": 1}
    device = client.post("/api/v1/notifications/devices", json={"token": "fcm-token-123456", "platform": "android"})
    assert device.status_code == 201
    # The same device now signs in as the other customer: the token moves with it.
    assert client_for(app, theirs).post("/api/v1/notifications/devices",
                                        json={"token": "fcm-token-123456"}).status_code == 201
    with camp_engine.connect() as conn:
        assert conn.execute(text("SELECT user_id FROM push_devices WHERE token = 'fcm-token-123456'")).scalar_one() \
            == theirs.id


def test_outbox_lists_what_development_sent_to_whom(app_factory: Any, messaging_env: dict[str, str],
                                                    make_runtime: Any, camp_engine: Engine) -> None:
    rt = make_runtime(SENDGRID_API_KEY="", TWILIO_ACCOUNT_SID="")
    app = app_factory(**{**messaging_env, "SENDGRID_API_KEY": "", "TWILIO_ACCOUNT_SID": ""})
    customer = make_account(camp_engine, "customer")
    booking = a_booking(camp_engine, customer.id, a_vendor(camp_engine), starts=tomorrow_noon())
    with camp_engine.begin() as conn:
        conn.execute(text("UPDATE customers SET communication_preferences = '{\"email\": true, \"sms\": true}' "
                          "WHERE id = :c"), {"c": customer.id})
        conn.execute(text("UPDATE bookings SET status = 'confirmed' WHERE id = :b"), {"b": booking})
    dispatch(rt)
    own = client_for(app, customer).get("/api/v1/outbox")
    assert own.status_code == 200
    assert {(m["channel"], m["subject"]) for m in own.json} == {("email", "Booking confirmed"), ("sms", None)}
    it_desk = client_for(app, make_account(camp_engine, "it_department")).get(
        "/api/v1/outbox", query_string={"recipient": customer.email})
    assert [m["channel"] for m in it_desk.json] == ["email"]
    other = client_for(app, make_account(camp_engine, "customer")).get("/api/v1/outbox")
    assert other.status_code == 200 and other.json == []


def test_an_in_app_notification_another_writer_stored_is_not_doubled(rt: Runtime, server: ProviderServer) -> None:
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": True, "sms": False})
    booking = a_booking(rt.engine, customer.id, a_vendor(rt.engine), starts=tomorrow_noon())
    with rt.engine.begin() as conn:  # e.g. dispatch's trigger writing its own notification row
        conn.execute(text("INSERT INTO notifications (user_id, type, title, message, data) VALUES "
                          "(:u, 'booking_confirmed', 'Confirmed', 'Written elsewhere', CAST(:d AS jsonb))"),
                     {"u": customer.id, "d": f'{{"booking_id": "{booking}"}}'})
        conn.execute(text("UPDATE bookings SET status = 'confirmed' WHERE id = :b"), {"b": booking})
    dispatch(rt)
    with rt.engine.connect() as conn:
        rows = conn.execute(text("SELECT message FROM notifications WHERE user_id = :u"),
                            {"u": customer.id}).scalars().all()
    assert rows == ["Written elsewhere"]
    assert {(d["channel"], d["status"]) for d in event_deliveries(rt.engine, booking)} == {
        ("in_app", "delivered"), ("email", "sent")}
    assert [m.to for m in server.accepted("sendgrid")] == [customer.email]


def _deliveries_of(engine: Engine, booking: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT d.id, d.channel, d.status, d.sending_job_id, d.sending_attempt FROM message_deliveries AS d "
            "JOIN notification_events AS e ON e.id = d.event_id WHERE e.booking_id = :b ORDER BY d.channel"),
            {"b": booking}).mappings()]


def _stored(engine: Engine, delivery_ids: list[int]) -> Counter[int]:
    """How many times the outbox and in-app hold each delivery (sent once: exactly one)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT delivery_id FROM outbox_messages WHERE delivery_id = ANY(:ids) UNION ALL "
            "SELECT CAST(data ->> 'delivery_id' AS bigint) FROM notifications "
            "WHERE data ->> 'delivery_id' = ANY(CAST(:ids AS text[]))"), {"ids": delivery_ids}).scalars()
        return Counter(rows)


def test_a_notification_whose_worker_died_is_resolved_within_two_minutes(make_runtime: Any) -> None:
    """Booking notifications claim with the job attempt (as campaign chunks do), so one left in
    `sending` by a dead worker is in doubt once that attempt's lease is dead, not 10 minutes later:
    found at the provider it is recorded, never found it is sent once more."""
    rt = make_runtime(SENDGRID_API_KEY="", TWILIO_ACCOUNT_SID="")  # the outbox: it can be asked
    (customer,) = add_customers(rt.engine, 1, city=a_city(), prefs={"email": True, "sms": True})
    booking = a_booking(rt.engine, customer.id, a_vendor(rt.engine), starts=tomorrow_noon())
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET status = 'confirmed' WHERE id = :b"), {"b": booking})
    job = submit(rt, "notifications.dispatch", {}, key=str(uuid.uuid4()))
    assert execute(rt, job) == "succeeded"
    sent = _deliveries_of(rt.engine, booking)
    assert {(d["channel"], d["status"]) for d in sent} == {("email", "sent"), ("sms", "sent"), ("in_app", "delivered")}
    assert {(d["sending_job_id"], d["sending_attempt"]) for d in sent} == {(job, 1)}  # the claim names the attempt
    ids = [d["id"] for d in sent]
    email = next(d["id"] for d in sent if d["channel"] == "email")

    # The worker died between the provider's answer and recording it; the email never reached the
    # provider. While the attempt's lease is alive (its heartbeat renews it) nothing is touched.
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'running', lease_expires_at = now() + interval '30 seconds' "
                          "WHERE id = :j"), {"j": job})
        conn.execute(text("UPDATE message_deliveries SET status = 'sending', provider_message_id = NULL "
                          "WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM outbox_messages WHERE delivery_id = :d"), {"d": email})
    reconcile.reconcile(rt)  # the defaults
    assert {d["status"] for d in _deliveries_of(rt.engine, booking)} == {"sending"}

    # The heartbeat stopped: a lease later (when the attempt is at least that old) it is dead.
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :j"), {"j": job})
        conn.execute(text("UPDATE message_deliveries SET sending_at = sending_at - make_interval(secs => :lease) "
                          "WHERE id = ANY(:ids)"), {"ids": ids, "lease": rt.settings.job_lease_seconds})
    reconcile.reconcile(rt)  # the defaults: no fixed 10-minute staleness any more
    assert {(d["channel"], d["status"]) for d in _deliveries_of(rt.engine, booking)} == {
        ("email", "pending"), ("sms", "sent"), ("in_app", "delivered")}  # found: recorded; not found: sent again

    dispatch(rt)  # the next notifications.dispatch sends what the provider never got, once
    assert {(d["channel"], d["status"]) for d in _deliveries_of(rt.engine, booking)} == {
        ("email", "sent"), ("sms", "sent"), ("in_app", "delivered")}
    assert _stored(rt.engine, ids) == Counter({i: 1 for i in ids})  # nothing lost, nothing doubled

    # The bound under the default settings: a lease after the last heartbeat, plus the
    # reconciler's cadence (its schedule fires every minute): within the 2-minute goal.
    with rt.engine.connect() as conn:
        cron = conn.execute(text("SELECT cron FROM schedules WHERE name = 'campaigns.reconcile'")).scalar_one()
    assert cron == "* * * * *"
    grace = max(messaging.NOT_FOUND_GRACE_SECONDS, 3 * rt.settings.messaging.provider_timeout_seconds)
    assert max(rt.settings.job_lease_seconds, grace) + 60 <= 120
