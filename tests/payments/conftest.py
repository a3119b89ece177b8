"""The local Razorpay server, the real SDK pointed at it, and the settlement tests' own database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ombaro.providers.razorpay import RazorpayProvider
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


def provider_env(razorpay: FakeRazorpay) -> dict[str, str]:
    """Settings for an app or a worker that talks to the local server through the SDK."""
    return {"OMBARO_PAYMENTS_PROVIDER": "razorpay", "RAZORPAY_BASE_URL": razorpay.base_url,
            "RAZORPAY_KEY_ID": KEY_ID, "RAZORPAY_KEY_SECRET": KEY_SECRET, "RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RAZORPAY_TIMEOUT_SECONDS": "1"}
