"""The local Razorpay server, the real SDK pointed at it, and the settlement tests' own database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine
from werkzeug.serving import make_server

from ombaro.providers.razorpay import RazorpayProvider
from tests.helpers import Account, make_account
from tests.payments.razorpay_server import KEY_ID, KEY_SECRET, FakeRazorpay
from tests.settlements.conftest import settle_engine, settle_url  # noqa: F401 (fixtures shared with settlements)

WEBHOOK_SECRET = "local-webhook-secret"


@pytest.fixture(scope="session")
def razorpay_server() -> Iterator[FakeRazorpay]:
    server = FakeRazorpay().start()
    yield server
    server.stop()


@pytest.fixture
def razorpay(razorpay_server: FakeRazorpay) -> Iterator[FakeRazorpay]:
    razorpay_server.reset()
    yield razorpay_server
    razorpay_server.reset()


@pytest.fixture
def provider(razorpay: FakeRazorpay) -> RazorpayProvider:
    """The real SDK against the local server, with a short timeout so 'too late' comes quickly."""
    return RazorpayProvider(key_id=KEY_ID, key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET,
                            base_url=razorpay.base_url, timeout_seconds=0.5)


@pytest.fixture
def rzp_app(app_factory: Any, razorpay: FakeRazorpay, settle_url: str) -> Any:  # noqa: F811
    """The API on the settlement tests' own database (payments rows there never reach the session
    database, whose other tests delete bookings) with the SDK pointed at the local server."""
    return app_factory(DATABASE_URL=settle_url, **provider_env(razorpay))


@pytest.fixture
def engine(settle_engine: Engine) -> Engine:  # noqa: F811
    return settle_engine


@pytest.fixture(scope="module")
def people(settle_engine: Engine) -> dict[str, Account]:  # noqa: F811
    """A vendor, two customers, finance and customer care, in the settlement tests' database."""
    engine = settle_engine
    vendor = make_account(engine, "vendor")
    return {"vendor": vendor, "customer": make_account(engine, "customer"),
            "other_customer": make_account(engine, "customer"),
            "finance": make_account(engine, "finance_department"), "care": make_account(engine, "customer_care")}


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
