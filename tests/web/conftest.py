"""The demo marketplace at a small scale, served by the app, with a super admin's token: what the
bad-input tests throw their inputs at."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from devtools.demo import PLATFORM_ZONE, enable_demo_logins, seed_demo
from tests.services import migrate
from tests.web.helpers import Demo


@pytest.fixture(scope="session")
def demo(make_database: Callable[[], str], redis_url: str, service_env: dict[str, str]) -> Iterator[Demo]:
    url = make_database()
    migrate(url)
    engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        # The database's clock decides what today is (the demo data is built around it).
        today = conn.execute(text("SELECT (now() AT TIME ZONE :zone)::date"), {"zone": PLATFORM_ZONE.key}).scalar_one()
        seed_demo(conn, scale=0.02, today=today)
        enable_demo_logins(conn)
        admin_id = conn.execute(text("SELECT id FROM auth.users WHERE email = 'super.admin@ombaro.test'")).scalar_one()
    from web import create_app

    # The webhooks configured as in production (signatures from the fuzzer never verify): an
    # unconfigured one answers 503 by design, which would hide what a bad body does to it.
    sendgrid = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    app = create_app({"DATABASE_URL": url, "REDIS_URL": redis_url, "RAZORPAY_WEBHOOK_SECRET": "whsec-bad-input",
                      "OMBARO_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(sendgrid).decode(),
                      "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "bad-input-token"})
    yield Demo(url, engine, app, today, admin_id)
    engine.dispose()
