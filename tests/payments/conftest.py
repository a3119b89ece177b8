"""The local Razorpay server, the real SDK pointed at it, and the settlement tests' own database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.factories.accounts import Account, make_account
from tests.payments.fixtures import provider, razorpay, razorpay_server  # noqa: F401
from tests.payments.helpers import provider_env
from tests.payments.razorpay_server import FakeRazorpay
from tests.settlements.fixtures import settle_engine, settle_url  # noqa: F401 (fixtures shared with settlements)


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


