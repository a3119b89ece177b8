"""A bookable vendor with logins (vendor, therapist, customers) for the bookings API tests."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.factories import dispatch as factory
from tests.factories.accounts import Account, make_account
from tests.factories.bookings import HOURS, Shop


@pytest.fixture(scope="module")
def shop(engine: Engine) -> Shop:
    vendor = make_account(engine, "vendor")
    factory.vendor(engine, vendor_id=vendor.id, hours=HOURS)
    service_id, code = factory.service(engine, price="1500.00", durations=(60, 90))
    therapist = make_account(engine, "therapist", vendor_id=vendor.id)
    factory.therapist(engine, vendor.id, codes=[code], therapist_id=therapist.therapist_id)
    return Shop(vendor, therapist, service_id, code, factory.addon(engine, price="300.00", minutes=15))


@pytest.fixture
def customer(engine: Engine) -> Account:
    return make_account(engine, "customer")


@pytest.fixture(scope="module")
def marketer(engine: Engine) -> Account:
    return make_account(engine, "marketing_department")


