"""Delivery status from SendGrid (Event Webhook) and Twilio (status callbacks, inbound STOP).

Both are checked before anything is parsed: SendGrid's ECDSA signature over timestamp + raw body
(`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`), Twilio's HMAC-SHA1 of the full URL and
the sorted POST parameters (`X-Twilio-Signature`, twilio's RequestValidator). A bad signature is a
400 and changes nothing; so is a SendGrid request signed longer ago than
`OMBARO_SENDGRID_WEBHOOK_MAX_AGE_SECONDS` (a replay), and Twilio events are de-duplicated on their
signed content, not on an unsigned header (docs/security.md). Events are applied on the service
session acting as the workers' role: the caller is a provider, not a user, and its signature is
its authentication. Applying is a few set-based statements, so the answer comes at once; a
replayed event changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from ombaro.campaigns import webhooks
from ombaro.db import WORKER_ROLE, act_as
from web.auth import public
from web.errors import problem
from web.extension import Ombaro
from web.sanitize import Blueprint

blp = Blueprint("webhooks_messaging", __name__, url_prefix="/api/v1/webhooks",
                description="Messaging provider callbacks")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
MAX_EVENTS = 10_000


def _worker_connection(session: Any) -> Any:
    act_as(session, WORKER_ROLE, {"role": "worker", "sub": None, "purpose": "messaging webhook"})
    return session.connection()


OUTCOME = {"type": "object", "required": ["duplicates", "moved", "opted_out"], "properties": {
    "received": {"type": "integer", "minimum": 0}, "duplicates": {"type": "integer", "minimum": 0},
    "moved": {"type": "integer", "minimum": 0}, "opted_out": {"type": "integer", "minimum": 0}}}


@blp.post("/sendgrid")
@public
@blp.doc(
    parameters=[{"name": SENDGRID_SIGNATURE, "in": "header", "required": True, "schema": {"type": "string"},
                 "description": "ECDSA signature (base64) over the timestamp and the raw body"},
                {"name": SENDGRID_TIMESTAMP, "in": "header", "required": True, "schema": {"type": "string"}}],
    requestBody={"required": True, "content": {"application/json": {"schema": {
        "type": "array", "maxItems": MAX_EVENTS, "items": {"type": "object"}}}}},
    responses={"200": {"description": "applied; counts of what changed",
                       "content": {"application/json": {"schema": OUTCOME}}}})
def sendgrid_events() -> Any:
    """SendGrid's Event Webhook: processed, delivered, open, click, bounce, dropped, unsubscribe."""
    ombaro = Ombaro.get()
    key = ombaro.settings.messaging.sendgrid_webhook_public_key
    if not key:
        return problem(503, "Service Unavailable", "the SendGrid webhook verification key is not configured")
    body = request.get_data(cache=False)
    signature, timestamp = request.headers.get(SENDGRID_SIGNATURE, ""), request.headers.get(SENDGRID_TIMESTAMP, "")
    if not signature or not timestamp:
        return problem(400, "Bad Request", "the webhook signature headers are missing",
                       errors={SENDGRID_SIGNATURE: ["missing"] if not signature else [],
                               SENDGRID_TIMESTAMP: ["missing"] if not timestamp else []})
    now = dt.datetime.now(dt.UTC)
    max_age = ombaro.settings.messaging.sendgrid_webhook_max_age_seconds
    if (stale := webhooks.signature_age_problem(timestamp, now=now, max_age_seconds=max_age)) is not None:
        return problem(400, "Bad Request", f"the webhook timestamp {stale}", errors={SENDGRID_TIMESTAMP: [stale]})
    try:
        verified = EventWebhook(key).verify_signature(body.decode("utf-8"), signature, timestamp)
    except (ValueError, TypeError, UnicodeDecodeError):
        verified = False
    if not verified:
        return problem(400, "Bad Request", "the webhook signature does not verify",
                       errors={SENDGRID_SIGNATURE: ["does not verify"]})
    try:
        events = json.loads(body)
    except ValueError:
        return problem(400, "Bad Request", "the body is not JSON")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events) or len(events) > MAX_EVENTS:
        return problem(400, "Bad Request", "the body is not a list of SendGrid events")
    if errors := webhooks.sendgrid_event_errors(events):
        return problem(400, "Bad Request", "some events are malformed; none was applied", errors=errors)
    with ombaro.sessions() as session, session.begin():
        outcome = webhooks.sendgrid_events(_worker_connection(session), events)
    return jsonify(outcome), 200


@blp.post("/twilio")
@public
@blp.doc(
    parameters=[{"name": TWILIO_SIGNATURE, "in": "header", "required": True, "schema": {"type": "string"},
                 "description": "HMAC-SHA1 (base64) of the full URL and the sorted POST parameters"},
                {"name": "ref", "in": "query", "required": False, "schema": {"type": "string"}}],
    requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"MessageSid": {"type": "string"}, "MessageStatus": {"type": "string"},
                                         "From": {"type": "string"}, "Body": {"type": "string"}}}}}},
    responses={"200": {"description": "applied; counts of what changed",
                       "content": {"application/json": {"schema": OUTCOME}}}})
def twilio_events() -> Any:
    """Twilio's status callback for a message (sent, delivered, read, undelivered, failed) and
    inbound messages (STOP opts the number out)."""
    ombaro = Ombaro.get()
    messaging = ombaro.settings.messaging
    if not messaging.twilio_auth_token:
        return problem(503, "Service Unavailable", "the Twilio auth token is not configured")
    signature = request.headers.get(TWILIO_SIGNATURE, "")
    if not signature:
        return problem(400, "Bad Request", f"{TWILIO_SIGNATURE} is missing", errors={TWILIO_SIGNATURE: ["missing"]})
    # The URL Twilio called: behind a proxy only the configured public base URL is the right one.
    url = f"{messaging.public_base_url}{request.full_path.rstrip('?')}" if messaging.public_base_url \
        else request.url
    if not RequestValidator(messaging.twilio_auth_token).validate(url, request.form, signature):
        return problem(400, "Bad Request", "the webhook signature does not verify",
                       errors={TWILIO_SIGNATURE: ["does not verify"]})
    with ombaro.sessions() as session, session.begin():
        outcome = webhooks.twilio_event(_worker_connection(session), request.form.to_dict(),
                                        ref=request.args.get("ref"))
    return jsonify(outcome), 200
