"""The local Razorpay server and the real SDK pointed at it: fixtures of the payment tests that the
metrics tests use too (conftest modules import them from here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ombaro.providers.razorpay import RazorpayProvider
from tests.payments.helpers import WEBHOOK_SECRET
from tests.payments.razorpay_server import KEY_ID, KEY_SECRET, FakeRazorpay


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
