"""Sending through the real SendGrid and Twilio SDKs against the local provider server, with the
jobs run in this process through the real command log (claim, lease, fencing)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.campaigns import reconcile, sending
from ombaro.campaigns.unsubscribe import verify
from ombaro.messaging import Runtime
from tests.campaigns.helpers import PUBLIC_BASE, deliveries, execute, run_queued, start_and_run, submit, with_settings
from tests.campaigns.provider_server import ProviderServer
from tests.factories.campaigns import a_city, add_campaign, add_customers, zone_at

pytestmark = pytest.mark.db


def statuses(engine: Engine, campaign_id: uuid.UUID) -> Counter[tuple[str, str]]:
    return Counter((d["channel"], d["status"]) for d in deliveries(engine, campaign_id))


def campaign_status(engine: Engine, campaign_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id}).scalar_one()


def test_campaign_sends_each_customer_once_per_channel_and_completes(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    people = add_customers(rt.engine, 25, city=city, name="Kavya Iyer")
    campaign = add_campaign(rt.engine, city=city)
    ran = start_and_run(rt, campaign, chunk_size=10)
    assert [k for k, _ in ran].count("campaigns.send_chunk") == 3
    assert all(outcome == "succeeded" for _, outcome in ran)
    assert statuses(rt.engine, campaign) == {("email", "sent"): 25, ("sms", "sent"): 25}
    emails, sms = server.accepted("sendgrid"), server.accepted("twilio")
    assert sorted(m.to for m in emails) == sorted(p.email for p in people)
    assert sorted(m.to for m in sms) == sorted(p.mobile for p in people)
    assert server.duplicates() == {}
    # One SendGrid request per chunk carried all of the chunk's personalizations.
    assert server.requests["sendgrid"] == 3
    mail = emails[0]
    assert mail.subject == f"Kavya, your Gold treat in {city}"
    assert mail.body.startswith(f"Hi Kavya,\n\nBook a massage in {city}")
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail.headers["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{PUBLIC_BASE}/api/v1/unsubscribe/") and link in mail.body
    delivery_id, customer = verify(rt.settings.messaging.unsubscribe_secret, link.rsplit("/", 1)[1])
    assert str(delivery_id) == mail.ref and customer in {p.id for p in people}
    assert sms[0].body.endswith("Reply STOP to opt out")
    assert sms[0].extra["callback"].startswith(f"{PUBLIC_BASE}/api/v1/webhooks/twilio?ref=")
    assert campaign_status(rt.engine, campaign) == "completed"
    with rt.engine.connect() as conn:
        figures = conn.execute(text("SELECT metrics FROM campaigns WHERE id = :c"), {"c": campaign}).scalar_one()
    assert (figures["sent"], figures["failed"], figures["in_flight"]) == (50, 0, 0)


def test_email_batches_hold_at_most_a_thousand_personalizations(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 2300, city=city, prefs={"email": True, "sms": False})
    campaign = add_campaign(rt.engine, city=city, ctype="email", content={"email": {"subject": "Hi",
                                                                                    "body": "Hello $name"}})
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("email", "sent"): 2300}
    assert server.requests["sendgrid"] == 3  # 1000 + 1000 + 300
    assert len({m.sid for m in server.accepted("sendgrid")}) == 3


def test_rerunning_a_finished_chunk_sends_nothing(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 8, city=city)
    campaign = add_campaign(rt.engine, city=city)
    start_and_run(rt, campaign)
    sent_before = len(server.accepted("twilio")) + len(server.accepted("sendgrid"))
    with rt.engine.begin() as conn:
        params = conn.execute(text("SELECT params FROM jobs WHERE kind = 'campaigns.send_chunk' "
                                   "AND idempotency_scope = :s"), {"s": sending.scope(campaign)}).scalar_one()
        conn.execute(text("UPDATE campaigns SET status = 'active' WHERE id = :c"), {"c": campaign})
    # The same chunk delivered again (a new job with the same range): every delivery already exists.
    job = submit(rt, sending.KIND_CHUNK, params, key="again", scope=sending.scope(campaign))
    assert execute(rt, job) == "succeeded"
    assert len(server.accepted("twilio")) + len(server.accepted("sendgrid")) == sent_before == 16


def test_invalid_number_fails_for_good_and_is_not_retried(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    good = add_customers(rt.engine, 3, city=city)
    bad = add_customers(rt.engine, 1, city=city, mobile_suffix="0000")
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    start_and_run(rt, campaign)
    rows = {d["user_id"]: d for d in deliveries(rt.engine, campaign)}
    assert rows[bad[0].id]["status"] == "failed" and "21211" in rows[bad[0].id]["error"]
    assert rows[bad[0].id]["attempts"] == 1
    assert all(rows[p.id]["status"] == "sent" for p in good)
    assert server.requests["twilio"] == 4


def test_5xx_is_retried_with_backoff_until_it_goes_through(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 4, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    server.add_fault("twilio", "status", status=503, count=3)
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("sms", "sent"): 4}
    assert server.duplicates() == {}
    assert sum(d["attempts"] for d in deliveries(rt.engine, campaign)) == 7  # 4 sends + 3 refused


def test_429_retry_after_pauses_the_provider_for_every_worker(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 6, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    server.add_fault("twilio", "status", status=429, retry_after=1, count=2)
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("sms", "sent"): 6}
    times = server.request_times["twilio"]
    refused = max(t for t, status in times if status == 429)
    # Besides the requests already in flight with the refused ones, nothing was asked of Twilio
    # for (about) its Retry-After.
    later = [t for t, _ in times if t > refused + 0.2]
    assert later and min(later) - refused >= 0.9
    assert len(times) == 8 and server.duplicates() == {}


def test_quiet_hours_defer_sms_to_nine_local_time_and_email_goes_now(rt: Runtime, server: ProviderServer) -> None:
    now = dt.datetime.now(dt.UTC)
    zone = zone_at(23)  # quiet there now
    city = a_city()
    night = add_customers(rt.engine, 2, city=city, timezone=zone)
    campaign = add_campaign(rt.engine, city=city)
    start_and_run(rt, campaign)
    rows = deliveries(rt.engine, campaign)
    assert Counter((d["channel"], d["status"]) for d in rows) == {("email", "sent"): 2, ("sms", "pending"): 2}
    sms = [d for d in rows if d["channel"] == "sms"]
    local_nine = (now.astimezone(ZoneInfo(zone)) + dt.timedelta(days=1)).replace(  # 9:00 after 23:xx there
        hour=9, minute=0, second=0, microsecond=0)
    assert all(d["next_attempt_at"] == local_nine for d in sms)
    assert all(d["attempts"] == 0 for d in sms)
    assert server.accepted("twilio") == []
    assert campaign_status(rt.engine, campaign) == "active"  # not done: deferred, not dropped
    with rt.engine.connect() as conn:
        waiting = conn.execute(text(
            "SELECT run_after, enqueued_at FROM jobs WHERE kind = 'campaigns.send_chunk' AND status = 'queued' "
            "AND idempotency_scope = :s"), {"s": sending.scope(campaign)}).one()
    assert waiting.run_after == local_nine and waiting.enqueued_at is None  # waits in PostgreSQL
    assert {p.email for p in night} == {m.to for m in server.accepted("sendgrid")}


def test_opt_out_during_the_campaign_stops_further_messages(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    stays, leaves = add_customers(rt.engine, 1, city=city), add_customers(rt.engine, 1, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    with rt.engine.begin() as conn:
        sending.materialize(conn, rt, campaign, {"city": [city]}, ["sms"], sending.LOWEST_ID,
                            uuid.UUID(int=2**128 - 1))
        conn.execute(text("UPDATE customers SET communication_preferences = '{\"sms\": false}' WHERE id = :c"),
                     {"c": leaves[0].id})
    start_and_run(rt, campaign)
    rows = {d["user_id"]: d for d in deliveries(rt.engine, campaign)}
    assert (rows[leaves[0].id]["status"], rows[leaves[0].id]["error"]) == ("skipped", "opted_out")
    assert rows[stays[0].id]["status"] == "sent"
    assert [m.to for m in server.accepted("twilio")] == [stays[0].mobile]


def test_weekly_cap_skips_customers_who_had_enough(rt: Runtime, server: ProviderServer) -> None:
    rt = with_settings(rt, weekly_cap={"email": 1, "sms": 1, "whatsapp": 1, "push": 1, "in_app": 1})
    city = a_city()
    people = add_customers(rt.engine, 2, city=city)
    earlier = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "First"}},
                           target={"customer_ids": [str(people[0].id)]})
    start_and_run(rt, earlier)
    later = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Second"}})
    start_and_run(rt, later)
    rows = {d["user_id"]: d for d in deliveries(rt.engine, later)}
    assert (rows[people[0].id]["status"], rows[people[0].id]["error"]) == ("skipped", "frequency_cap")
    assert rows[people[1].id]["status"] == "sent"


def test_paused_campaign_stops_and_resume_finishes_without_repeats(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 12, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, rt.enqueue, campaign, key="first", chunk_size=4)
    run_queued(rt, campaign, timeout=5)  # runs the start and all three chunks; pause the second half:
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE campaigns SET status = 'paused' WHERE id = :c"), {"c": campaign})
        conn.execute(text("UPDATE message_deliveries SET status = 'pending', sending_at = NULL, sent_at = NULL, "
                          "provider_message_id = NULL WHERE campaign_id = :c AND user_id IN (SELECT user_id FROM "
                          "message_deliveries WHERE campaign_id = :c ORDER BY user_id DESC LIMIT 5)"), {"c": campaign})
    server.clear()
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, rt.enqueue, campaign, key="while-paused", chunk_size=4)
    run_queued(rt, campaign)
    assert server.accepted("twilio") == []  # paused: nothing goes out
    assert statuses(rt.engine, campaign)[("sms", "pending")] == 5
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE campaigns SET status = 'active' WHERE id = :c"), {"c": campaign})
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, rt.enqueue, campaign, key="resume", chunk_size=4)
    run_queued(rt, campaign)
    assert len(server.accepted("twilio")) == 5 and server.duplicates() == {}
    assert statuses(rt.engine, campaign) == {("sms", "sent"): 12}


def test_cancelled_campaign_skips_what_is_pending(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 5, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    with rt.engine.begin() as conn:
        sending.materialize(conn, rt, campaign, {"city": [city]}, ["sms"], sending.LOWEST_ID,
                            uuid.UUID(int=2**128 - 1))
        conn.execute(text("UPDATE campaigns SET status = 'cancelled' WHERE id = :c"), {"c": campaign})
    job = submit(rt, sending.KIND_CHUNK, {"campaign_id": str(campaign), "after": str(sending.LOWEST_ID),
                                          "upto": str(uuid.UUID(int=2**128 - 1))}, key="c", scope="t")
    execute(rt, job)
    assert statuses(rt.engine, campaign) == {("sms", "skipped"): 5}
    assert server.requests["twilio"] == 0


def test_twilio_timeout_after_acceptance_is_reconciled_to_sent_not_resent(rt: Runtime,
                                                                         server: ProviderServer) -> None:
    city = a_city()
    people = add_customers(rt.engine, 3, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello $first_name"}})
    server.add_fault("twilio", "timeout", seconds=3, accept=True)  # accepted, answer after the 1.5 s timeout
    start_and_run(rt, campaign)
    rows = deliveries(rt.engine, campaign)
    unknown = [d for d in rows if d["status"] == "unknown"]
    assert len(unknown) == 1 and [d["status"] for d in rows].count("sent") == 2
    assert campaign_status(rt.engine, campaign) == "active"  # an unknown outcome keeps it open
    outcome = reconcile.reconcile(rt, stale_after=0, grace=0)
    assert outcome["found"] == 1 and outcome["resend"] == 0
    (row,) = [d for d in deliveries(rt.engine, campaign) if d["id"] == unknown[0]["id"]]
    held = [m for m in server.accepted("twilio") if m.to == next(p.mobile for p in people if p.id == row["user_id"])]
    assert row["status"] == "sent" and row["provider_message_id"] == held[0].sid
    assert len(server.accepted("twilio")) == 3 and server.duplicates() == {}


def test_twilio_timeout_before_acceptance_is_sent_once_more(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 2, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello"}})
    server.add_fault("twilio", "timeout", seconds=3, accept=False)  # never accepted
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("sms", "sent"): 1, ("sms", "unknown"): 1}
    calls = []
    outcome = reconcile.reconcile(rt, stale_after=0, grace=0,
                                  submit_chunk=lambda kind, params, scope: calls.append(
                                      submit(rt, kind, params, key="resend", scope=scope)))
    assert outcome["resend"] == 1 and len(calls) == 1
    run_queued(rt, campaign)
    assert statuses(rt.engine, campaign) == {("sms", "sent"): 2}
    assert len(server.accepted("twilio")) == 2 and server.duplicates() == {}
    assert campaign_status(rt.engine, campaign) == "completed"


def test_sendgrid_timeout_waits_for_an_event_and_is_never_resent(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 2, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="email",
                            content={"email": {"subject": "Hi", "body": "Hello"}})
    server.add_fault("sendgrid", "timeout", seconds=3, accept=True)
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("email", "unknown"): 2}
    assert reconcile.reconcile(rt, stale_after=0, grace=0)["gave_up"] == 0  # waits for a webhook
    assert reconcile.reconcile(rt, stale_after=0, grace=0, give_up_after=0)["gave_up"] == 2
    rows = deliveries(rt.engine, campaign)
    assert all(d["status"] == "failed" and "not sent again" in d["error"] for d in rows)
    assert server.requests["sendgrid"] == 1


def test_worker_dying_after_the_outbox_insert_is_reconciled_from_the_outbox(make_runtime: Any) -> None:
    rt = make_runtime(SENDGRID_API_KEY="", TWILIO_ACCOUNT_SID="")  # development: the outbox
    city = a_city()
    add_customers(rt.engine, 3, city=city)
    campaign = add_campaign(rt.engine, city=city)
    start_and_run(rt, campaign)
    assert statuses(rt.engine, campaign) == {("email", "sent"): 3, ("sms", "sent"): 3}
    with rt.engine.begin() as conn:  # as if the worker died after the outbox stored them
        conn.execute(text("UPDATE message_deliveries SET status = 'sending', provider_message_id = NULL "
                          "WHERE campaign_id = :c"), {"c": campaign})
    assert reconcile.reconcile(rt, stale_after=0, grace=0)["found"] == 6
    rows = deliveries(rt.engine, campaign)
    assert all(d["status"] == "sent" and d["provider_message_id"].startswith("outbox-") for d in rows)
    with rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM outbox_messages WHERE delivery_id = ANY(:ids)"),
                              {"ids": [d["id"] for d in rows]}).scalar_one()
    assert stored == 6


def test_in_app_and_push_channels(rt: Runtime, server: ProviderServer, tmp_path: Any, make_runtime: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = {"type": "service_account", "project_id": "ombaro-test", "client_email": "fcm@ombaro.test",
               "token_uri": f"{server.url}/token",
               "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()).decode()}
    path = tmp_path / "fcm.json"
    path.write_text(json.dumps(account))
    rt = make_runtime(OMBARO_FCM_CREDENTIALS=str(path), OMBARO_FCM_BASE_URL=server.url)
    city = a_city()
    people = add_customers(rt.engine, 3, city=city, prefs={"push": True})
    with rt.engine.begin() as conn:
        conn.execute(text("INSERT INTO push_devices (user_id, token) VALUES (:u, :t)"),
                     [{"u": people[0].id, "t": f"fcm-{uuid.uuid4()}"},
                      {"u": people[1].id, "t": f"dead-{uuid.uuid4()}"}])
    content = {"push": {"title": "Hi $first_name", "body": "20% off"}, "in_app": {"title": "Offer", "body": "20% off"}}
    campaign = add_campaign(rt.engine, city=city, content=content)
    start_and_run(rt, campaign)
    rows = Counter((d["channel"], d["status"]) for d in deliveries(rt.engine, campaign))
    assert rows == {("in_app", "delivered"): 3, ("push", "sent"): 1, ("push", "failed"): 1}
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notifications WHERE type = 'promotion' AND user_id = ANY(:u)"),
                            {"u": [p.id for p in people]}).scalar_one() == 3
        assert conn.execute(text("SELECT count(*) FROM push_devices WHERE user_id = :u AND disabled_at IS NOT NULL"),
                            {"u": people[1].id}).scalar_one() == 1  # FCM said UNREGISTERED
    assert [m.subject for m in server.accepted("fcm")] == ["Hi Asha"]


def test_campaign_past_its_end_date_sends_nothing_more(rt: Runtime, server: ProviderServer) -> None:
    city = a_city()
    add_customers(rt.engine, 3, city=city)
    campaign = add_campaign(rt.engine, city=city, end_date=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    start_and_run(rt, campaign)
    assert server.requests["twilio"] == server.requests["sendgrid"] == 0
    job = submit(rt, "campaigns.start_due", {}, key=str(uuid.uuid4()))
    execute(rt, job)
    assert campaign_status(rt.engine, campaign) == "completed"


def test_two_chunks_finishing_together_still_complete_the_campaign(rt: Runtime, camp_engine: Engine) -> None:
    """Each chunk's own end-of-work check sees its sibling still running; the check made after the
    outcomes are recorded (the task's finish_after_chunk) completes the campaign."""
    campaign = add_campaign(camp_engine, city=a_city())  # nobody in that city: no deliveries left
    with camp_engine.begin() as conn:
        def job(kind: str, key: str, status: str) -> uuid.UUID:
            return conn.execute(text(
                "INSERT INTO jobs (kind, params, status, idempotency_scope, idempotency_key) VALUES "
                "(:kind, CAST(:params AS jsonb), :status, :scope, :key) RETURNING id"),
                {"kind": kind, "params": json.dumps({"campaign_id": str(campaign)}), "status": status,
                 "scope": sending.scope(campaign), "key": key}).scalar_one()
        job(sending.KIND_START, "start", "succeeded")
        first, second = job(sending.KIND_CHUNK, "c1", "running"), job(sending.KIND_CHUNK, "c2", "running")
    assert not sending.finish(rt, campaign, exclude_job=first)  # the second is still running
    assert not sending.finish(rt, campaign, exclude_job=second)  # and, at the same moment, the first
    with camp_engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id IN (:a, :b)"), {"a": first, "b": second})
    assert sending.finish_after_chunk(rt, first)
    with camp_engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign}).scalar_one() \
            == "completed"
