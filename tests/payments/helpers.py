"""Settings that point the real Razorpay SDK at the local server, and an app served over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

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
