"""Provider webhooks. Razorpay's: the signature is checked over the raw body before anything
is parsed, the event is kept once per event id, and the work happens in a job, so the answer
comes in milliseconds (Razorpay retries slow or failed deliveries for 24 hours)."""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify, request

from ombaro import commands
from ombaro.payments import webhooks as payment_webhooks
from ombaro.providers import payment_provider
from web.auth import public
from web.errors import problem
from web.extension import Ombaro
from web.sanitize import Blueprint

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks", description="Provider callbacks")

SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "X-Razorpay-Event-Id"


@blp.post("/razorpay")
@public
@blp.doc(
    parameters=[{"name": SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
                 "description": "HMAC-SHA256 of the raw body with the webhook secret (hex)"},
                {"name": EVENT_ID_HEADER, "in": "header", "required": False, "schema": {"type": "string"}}],
    requestBody={"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["event"], "properties": {"event": {"type": "string"}}}}}},
    responses={"200": {"description": "recorded (`accepted`, with its job) or already seen (`duplicate`)",
                       "content": {"application/json": {"schema": {
                           "type": "object", "required": ["status", "event_id"], "properties": {
                               "status": {"type": "string", "enum": ["accepted", "duplicate"]},
                               "event_id": {"type": "string"},
                               "job_id": {"type": "string", "format": "uuid"}}}}}}})
def razorpay_webhook() -> Any:
    """Razorpay events (payment captured / failed, refund processed / failed, transfer processed /
    failed). Written on the service session: the caller is Razorpay, not a user, and the
    signature over the raw body is its authentication. A replay is answered 200 and changes
    nothing, whatever its (unsigned) X-Razorpay-Event-Id says: de-duplication holds on the signed
    content too."""
    ombaro = Ombaro.get()
    if not ombaro.settings.razorpay_webhook_secret:
        return problem(503, "Service Unavailable", "the Razorpay webhook secret is not configured")
    body = request.get_data(cache=False)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return problem(400, "Bad Request", f"{SIGNATURE_HEADER} is missing",
                       errors={SIGNATURE_HEADER: ["missing"]})
    if not payment_provider(ombaro.settings).verify_webhook_signature(body, signature):
        return problem(400, "Bad Request", "the webhook signature does not verify",
                       errors={SIGNATURE_HEADER: ["does not verify"]})
    try:
        event = json.loads(body)
        if not isinstance(event, dict):
            raise TypeError("not an object")
        event_type = str(event["event"])
    except (ValueError, KeyError, TypeError):
        return problem(400, "Bad Request", "the body is not a Razorpay event")
    event_id = payment_webhooks.event_id_of(body, request.headers.get(EVENT_ID_HEADER))
    with ombaro.sessions() as session, session.begin():
        recorded = payment_webhooks.record_event(session, provider="razorpay", event_id=event_id, event_type=event_type,
                                         payload=event, signed_key=payment_webhooks.signed_key_of(body, event))
        if recorded is None:
            return jsonify({"status": "duplicate", "event_id": event_id}), 200
        submitted = commands.submit(session, "payments.webhook", {"webhook_event_id": str(recorded.id)},
                                    enqueue=ombaro.enqueue, key=f"razorpay:{event_id}", scope="webhooks")
        recorded.job_id = submitted.job.id
    return jsonify({"status": "accepted", "event_id": event_id, "job_id": str(submitted.job.id)}), 200
