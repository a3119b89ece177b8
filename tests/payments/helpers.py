"""Settings that point the real Razorpay SDK at the local server, an app served over real HTTP,
signed webhook events, a transaction as the workers' role, and calls released at once from threads."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from ombaro.db import WORKER_ROLE, act_as
from tests.factories.accounts import client_for
from tests.payments.razorpay_server import KEY_ID, KEY_SECRET, FakeRazorpay

WEBHOOK_SECRET = "local-webhook-secret"


def provider_env(razorpay: FakeRazorpay) -> dict[str, str]:
    """Settings for an app or a worker that talks to the local server through the SDK."""
    return {"OMBARO_PAYMENTS_PROVIDER": "razorpay", "RAZORPAY_BASE_URL": razorpay.base_url,
            "RAZORPAY_KEY_ID": KEY_ID, "RAZORPAY_KEY_SECRET": KEY_SECRET, "RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RAZORPAY_TIMEOUT_SECONDS": "1"}


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app behind a real threaded HTTP server on a free port (for requests made concurrently
    from threads, as clients make them); its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def row(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def as_worker(engine: Engine, work: Any) -> Any:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": None})
        return work(session)


def event(kind: str, order_id: str, payment_id: str, amount: int) -> bytes:
    body = {"entity": "event", "account_id": "acc_local", "event": kind, "contains": ["payment"],
            "payload": {"payment": {"entity": {"id": payment_id, "entity": "payment", "amount": amount,
                                               "currency": "INR", "status": kind.split(".")[1],
                                               "order_id": order_id, "method": "card", "card": {"type": "debit"},
                                               "created_at": 1764150000}}},
            "created_at": 1764150000}
    return json.dumps(body, separators=(",", ":")).encode()


def post_event(app: Any, body: bytes, *, secret: str = WEBHOOK_SECRET, event_id: str | None = None,
               signature: str | None = None) -> Any:
    sig = signature or hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Razorpay-Signature": sig, "X-Razorpay-Event-Id": event_id or f"evt_{secrets.token_hex(7)}",
               "Content-Type": "application/json"}
    return client_for(app).post("/api/v1/webhooks/razorpay", data=body, headers=headers)


def at_once(calls: list[Any]) -> list[Any]:
    """Run the calls from one thread each, released together; their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # kept and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results
