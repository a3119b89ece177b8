"""Delivery status webhooks: signatures checked before anything is read, events applied once,
statuses never moving backwards, opt-outs honoured."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, text
from twilio.request_validator import RequestValidator

from ombaro.campaigns.webhooks import signature_age_problem
from tests.campaigns.helpers import PUBLIC_BASE, TWILIO_TOKEN, sign_sendgrid
from tests.factories.campaigns import a_city, add_campaign, add_customers

pytestmark = pytest.mark.db

SG_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SG_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


@pytest.fixture
def webapp(app_factory: Any, messaging_env: dict[str, str]) -> Any:
    return app_factory(**messaging_env)


@pytest.fixture
def anon(webapp: Any) -> Any:
    return webapp.test_client()


def sent_delivery(engine: Engine, channel: str = "email", status: str = "sent") -> dict[str, Any]:
    city = a_city()
    (person,) = add_customers(engine, 1, city=city)
    campaign = add_campaign(engine, city=city)
    with engine.begin() as conn:
        row = conn.execute(text(
            "INSERT INTO message_deliveries (campaign_id, user_id, channel, status, provider, provider_message_id, "
            "sent_at, attempts) VALUES (:c, :u, :ch, :s, 'test', :pid, now(), 1) RETURNING id"),
            {"c": campaign, "u": person.id, "ch": channel, "s": status, "pid": f"SM{uuid.uuid4().hex}"}).one()
    return {"id": row.id, "user": person.id, "mobile": person.mobile, "campaign": campaign}


def delivery(engine: Engine, delivery_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM message_deliveries WHERE id = :d"),
                                 {"d": delivery_id}).mappings().one())


def prefs(engine: Engine, user: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT communication_preferences FROM customers WHERE id = :u"),
                            {"u": user}).scalar_one()


def post_sendgrid(client: Any, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]], *,
                  signature: str | None = None, timestamp: str | None = None) -> Any:
    body = json.dumps(events).encode()
    stamp = timestamp or str(int(time.time()))
    headers = {SG_TIMESTAMP: stamp, SG_SIGNATURE: signature or sign_sendgrid(key, stamp, body)}
    return client.post("/api/v1/webhooks/sendgrid", data=body, headers=headers, content_type="application/json")


def sg_event(delivery_id: int, event: str, **extra: Any) -> dict[str, Any]:
    return {"email": "x@example.test", "timestamp": int(time.time()), "event": event,
            "sg_event_id": uuid.uuid4().hex, "sg_message_id": "abc.filter", "delivery_id": str(delivery_id), **extra}


# --- SendGrid ---------------------------------------------------------------------------------------

def test_sendgrid_signature_failures_are_rejected_and_change_nothing(
    anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    d = sent_delivery(camp_engine)
    events = [sg_event(d["id"], "delivered")]
    other_key = ec.generate_private_key(ec.SECP256R1())
    stamp = str(int(time.time()))
    body = json.dumps(events).encode()
    cases = {
        "missing": anon.post("/api/v1/webhooks/sendgrid", data=body, content_type="application/json"),
        "wrong key": post_sendgrid(anon, other_key, events),
        "tampered body": anon.post("/api/v1/webhooks/sendgrid", data=body.replace(b"delivered", b"click"),
                                   content_type="application/json", headers={
                                       SG_TIMESTAMP: stamp, SG_SIGNATURE: sign_sendgrid(sendgrid_key, stamp, body)}),
        "other timestamp": anon.post("/api/v1/webhooks/sendgrid", data=body, content_type="application/json",
                                     headers={SG_TIMESTAMP: str(int(stamp) + 1),
                                              SG_SIGNATURE: sign_sendgrid(sendgrid_key, stamp, body)}),
        "garbage": post_sendgrid(anon, sendgrid_key, events, signature="bm90IGEgc2lnbmF0dXJl"),
    }
    assert {name: r.status_code for name, r in cases.items()} == dict.fromkeys(cases, 400)
    assert cases["missing"].headers["Content-Type"] == "application/problem+json"
    assert delivery(camp_engine, d["id"])["status"] == "sent"


def test_sendgrid_events_move_forward_once_and_never_back(
    anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    d = sent_delivery(camp_engine)
    opened = sg_event(d["id"], "open")
    first = post_sendgrid(anon, sendgrid_key, [opened])
    assert first.status_code == 200 and first.json["moved"] == 1
    # Redelivered (same sg_event_id), and late events of earlier stages: nothing moves back.
    again = post_sendgrid(anon, sendgrid_key, [opened, sg_event(d["id"], "delivered"),
                                               sg_event(d["id"], "processed")])
    assert again.json["duplicates"] == 1 and again.json["moved"] == 0
    row = delivery(camp_engine, d["id"])
    assert row["status"] == "opened" and row["delivered_at"] is not None and row["opened_at"] is not None
    post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "click")])
    assert delivery(camp_engine, d["id"])["status"] == "clicked"
    post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "bounce", reason="550 no such user")])
    assert delivery(camp_engine, d["id"])["status"] == "clicked"  # a bounce cannot undo a click


def test_sendgrid_bounce_is_recorded_and_blocks_later_opens(
    anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    d = sent_delivery(camp_engine)
    post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "bounce", reason="550 5.1.1 no such user")])
    row = delivery(camp_engine, d["id"])
    assert (row["status"], row["error"]) == ("bounced", "550 5.1.1 no such user")
    post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "delivered")])
    assert delivery(camp_engine, d["id"])["status"] == "bounced"


def test_sendgrid_event_resolves_a_timed_out_send(
    anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    d = sent_delivery(camp_engine, status="unknown")
    post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "processed")])
    row = delivery(camp_engine, d["id"])
    assert row["status"] == "sent" and row["sent_at"] is not None


def test_sendgrid_unsubscribe_and_spam_report_opt_the_customer_out(
    anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey,
) -> None:
    d = sent_delivery(camp_engine)
    response = post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "spamreport")])
    assert response.json["opted_out"] == 1
    assert prefs(camp_engine, d["user"])["email"] is False


def test_sendgrid_webhook_without_a_configured_key_is_unavailable(app_factory: Any,
                                                                   messaging_env: dict[str, str]) -> None:
    client = app_factory(**{**messaging_env, "OMBARO_SENDGRID_WEBHOOK_PUBLIC_KEY": ""}).test_client()
    assert client.post("/api/v1/webhooks/sendgrid", json=[]).status_code == 503


# --- Twilio -----------------------------------------------------------------------------------------

def post_twilio(client: Any, params: dict[str, str], *, ref: int | None = None, signature: str | None = None,
                token: str = TWILIO_TOKEN, idempotency: str | None = None) -> Any:
    path = "/api/v1/webhooks/twilio" + (f"?ref={ref}" if ref is not None else "")
    url = PUBLIC_BASE + path  # what Twilio called: the engine's public address
    headers = {"X-Twilio-Signature": signature or RequestValidator(token).compute_signature(url, params)}
    if idempotency:
        headers["I-Twilio-Idempotency-Token"] = idempotency
    return client.post(path, data=params, headers=headers)


def test_twilio_signature_failures_are_rejected(anon: Any, camp_engine: Engine) -> None:
    d = sent_delivery(camp_engine, channel="sms")
    params = {"MessageSid": "SMx", "MessageStatus": "delivered", "AccountSid": "AC1"}
    assert anon.post("/api/v1/webhooks/twilio", data=params).status_code == 400
    assert post_twilio(anon, params, ref=d["id"], token="not-the-token").status_code == 400
    signed_other = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_BASE + "/api/v1/webhooks/twilio?ref=1",
                                                                    params)
    assert post_twilio(anon, params, ref=d["id"], signature=signed_other).status_code == 400  # another URL
    tampered = RequestValidator(TWILIO_TOKEN).compute_signature(
        f"{PUBLIC_BASE}/api/v1/webhooks/twilio?ref={d['id']}", {**params, "MessageStatus": "failed"})
    assert post_twilio(anon, params, ref=d["id"], signature=tampered).status_code == 400  # other parameters
    assert delivery(camp_engine, d["id"])["status"] == "sent"


def test_twilio_status_callbacks_are_applied_once_and_never_backwards(anon: Any, camp_engine: Engine) -> None:
    d = sent_delivery(camp_engine, channel="sms")
    row = delivery(camp_engine, d["id"])
    delivered = {"MessageSid": row["provider_message_id"], "MessageStatus": "delivered", "AccountSid": "AC1"}
    assert post_twilio(anon, delivered, ref=d["id"], idempotency="tok-1").json["moved"] == 1
    assert post_twilio(anon, delivered, ref=d["id"], idempotency="tok-1").json["duplicates"] == 1
    late_sent = {**delivered, "MessageStatus": "sent"}
    assert post_twilio(anon, late_sent, ref=d["id"], idempotency="tok-2").json["moved"] == 0
    assert delivery(camp_engine, d["id"])["status"] == "delivered"  # delivered never returns to sent
    # Found by Twilio's sid alone (a callback without our ref).
    read = {**delivered, "MessageStatus": "read"}
    assert post_twilio(anon, read, idempotency="tok-3").json["moved"] == 1
    assert delivery(camp_engine, d["id"])["status"] == "opened"


def test_twilio_failure_callback_records_the_error(anon: Any, camp_engine: Engine) -> None:
    d = sent_delivery(camp_engine, channel="sms")
    params = {"MessageSid": "SMnope", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    post_twilio(anon, params, ref=d["id"])
    row = delivery(camp_engine, d["id"])
    assert (row["status"], row["error"]) == ("failed", "Twilio error 30003")


def test_inbound_stop_opts_the_number_out_of_sms(anon: Any, camp_engine: Engine) -> None:
    d = sent_delivery(camp_engine, channel="sms")
    params = {"MessageSid": "SMin", "SmsStatus": "received", "From": d["mobile"], "Body": "STOP",
              "OptOutType": "STOP"}
    assert post_twilio(anon, params).json["opted_out"] == 1
    assert prefs(camp_engine, d["user"])["sms"] is False


# --- replays and malformed events (docs/security.md) ----------------------------------------------

def webhook_events(engine: Engine, provider: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM messaging_webhook_events WHERE provider = :p"),
                            {"p": provider}).scalar_one()


def test_a_signed_twilio_event_replayed_with_a_new_idempotency_token_is_a_duplicate(
        anon: Any, camp_engine: Engine) -> None:
    d = sent_delivery(camp_engine, channel="sms")
    row = delivery(camp_engine, d["id"])
    failed = {"MessageSid": row["provider_message_id"], "MessageStatus": "undelivered", "ErrorCode": "30005"}
    first = post_twilio(anon, failed, ref=d["id"], idempotency="tok-a")
    assert first.status_code == 200 and first.json["moved"] == 1
    recorded = webhook_events(camp_engine, "twilio")
    for token in ("tok-b", "tok-c", None):  # the header is not signed: anyone may change it
        replay = post_twilio(anon, failed, ref=d["id"], idempotency=token)
        assert replay.status_code == 200 and replay.json == {"duplicates": 1, "moved": 0, "opted_out": 0}
    assert webhook_events(camp_engine, "twilio") == recorded
    # Another signed content (another status of the same message) is a new event.
    assert post_twilio(anon, {**failed, "MessageStatus": "failed"}, ref=d["id"], idempotency="tok-a").json[
        "duplicates"] == 0


def test_sendgrid_events_signed_outside_the_freshness_window_are_refused(
        anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    d = sent_delivery(camp_engine)
    now = int(time.time())
    # A minute beyond the 600 s window either side: the server judges the stamp a request's time
    # after `now` (truncated), which at +601 s made "ahead" 599.x s under load and let it through.
    # The exact edges (600 s in, 601 s out) are pinned with a fixed clock in the next test.
    for stamp in (now - 30 * 86400, now - 660, now + 660):
        answer = post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "delivered")], timestamp=str(stamp))
        assert answer.status_code == 400 and answer.content_type == "application/problem+json", stamp
        assert SG_TIMESTAMP in answer.json["errors"]
    bad = post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "delivered")], timestamp="yesterday")
    assert bad.status_code == 400 and "Unix time" in bad.json["errors"][SG_TIMESTAMP][0]
    assert delivery(camp_engine, d["id"])["status"] == "sent"
    recent = post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "delivered")], timestamp=str(now - 300))
    assert recent.status_code == 200 and recent.json["moved"] == 1


@pytest.mark.parametrize(("offset", "refused"), [(-601, "old"), (-600, None), (0, None), (600, None),
                                                 (601, "ahead")])
def test_the_freshness_window_edges_with_a_fixed_clock(offset: int, refused: str | None) -> None:
    """The window's edges exactly: a stamp 600 s either side of now is taken, 601 s is refused."""
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    problem = signature_age_problem(str(int(now.timestamp()) + offset), now=now, max_age_seconds=600)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and ("seconds old" if refused == "old" else "in the future") in problem


def test_sendgrid_freshness_window_is_tunable(
        app_factory: Any, messaging_env: dict[str, str], camp_engine: Engine,
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    strict = app_factory(**messaging_env, OMBARO_SENDGRID_WEBHOOK_MAX_AGE_SECONDS="60").test_client()
    d = sent_delivery(camp_engine)
    old = post_sendgrid(strict, sendgrid_key, [sg_event(d["id"], "delivered")], timestamp=str(int(time.time()) - 120))
    assert old.status_code == 400
    assert post_sendgrid(strict, sendgrid_key, [sg_event(d["id"], "delivered")]).status_code == 200


@pytest.mark.parametrize("stamp", ["soon", "1.5e9", True, 10**20, -5, [1], {"s": 1}])
def test_a_sendgrid_event_with_a_bad_timestamp_is_a_400_and_nothing_of_its_batch_applies(
        anon: Any, camp_engine: Engine, sendgrid_key: ec.EllipticCurvePrivateKey, stamp: Any) -> None:
    d = sent_delivery(camp_engine)
    recorded = webhook_events(camp_engine, "sendgrid")
    answer = post_sendgrid(anon, sendgrid_key, [sg_event(d["id"], "delivered"), sg_event(d["id"], "open",
                                                                                        timestamp=stamp)])
    assert answer.status_code == 400 and answer.content_type == "application/problem+json"
    assert answer.json["errors"] == {"[1].timestamp": ["not a Unix time in seconds"]}
    assert delivery(camp_engine, d["id"])["status"] == "sent"
    assert webhook_events(camp_engine, "sendgrid") == recorded
