"""Fixtures of the campaign tests that the notification and chaos tests share (conftest modules
import them from here): a database of their own (audiences count every customer in it), the local
provider server, the settings that point the real SDKs at it and an in-process runtime."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine

from ombaro.config import load_settings
from ombaro.messaging import Runtime, TokenBucket
from ombaro.providers.channels import configured_channels
from tests.campaigns.helpers import PUBLIC_BASE, TWILIO_SID, TWILIO_TOKEN, public_key_b64
from tests.campaigns.provider_server import ProviderServer
from tests.services import migrate


@pytest.fixture(scope="session")
def camp_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def camp_engine(camp_url: str) -> Iterator[Engine]:
    engine = create_engine(camp_url, pool_size=10, max_overflow=10)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ProviderServer]:
    server = ProviderServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(provider_server: ProviderServer) -> Iterator[ProviderServer]:
    provider_server.clear()
    yield provider_server
    provider_server.clear()


@pytest.fixture(scope="session")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    """The Event Webhook's signing key; the engine is configured with its public half."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def camp_redis_url(redis_url: str) -> str:
    """The test run's own Redis database (TEST_REDIS_URL), emptied before these tests: a fixed
    database number beside it would be another run's on a shared server."""
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture(scope="session")
def messaging_env(provider_server: ProviderServer, sendgrid_key: ec.EllipticCurvePrivateKey, camp_url: str,
                  camp_redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": camp_url, "REDIS_URL": camp_redis_url,
        "SENDGRID_API_KEY": "SG.local-test-key", "OMBARO_SENDGRID_HOST": provider_server.url,
        "OMBARO_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_b64(sendgrid_key),
        "OMBARO_EMAIL_FROM": "OMBARO <offers@ombaro.test>",
        "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "OMBARO_TWILIO_API_BASE": provider_server.url, "OMBARO_SMS_FROM": "+15005550006",
        "OMBARO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "OMBARO_PUBLIC_BASE_URL": PUBLIC_BASE, "OMBARO_PROVIDER_TIMEOUT_SECONDS": "1.5",
        "OMBARO_PROVIDER_CONCURRENCY": "4",
        "OMBARO_PROVIDER_RATES": "sendgrid=500,twilio_sms=500,twilio_whatsapp=500,fcm=500,outbox=5000",
        "OMBARO_CHANNEL_COSTS": "email=0.05,sms=0.25,whatsapp=0.80,push=0,in_app=0",
        "OMBARO_MARKETING_WEEKLY_CAP": "3",
    }


@pytest.fixture
def make_runtime(camp_engine: Engine, messaging_env: dict[str, str], camp_redis_url: str,
                 ) -> Callable[..., Runtime]:
    """A runtime in this process; keyword arguments override environment variables."""
    client = redis.Redis.from_url(camp_redis_url)

    def make(**env: str) -> Runtime:
        settings = load_settings({**os.environ, **messaging_env, **env})
        # Each runtime gets buckets of its own: tests do not share rate-limit state.
        bucket = TokenBucket(client, settings.messaging.provider_rates, prefix=f"test:{secrets.token_hex(4)}")
        return Runtime(engine=camp_engine, settings=settings,
                       channels=configured_channels(settings.messaging, camp_engine), bucket=bucket,
                       enqueue=lambda _job, _kind: None, sleep=time.sleep, max_inline_wait=3.0)

    return make


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()
