"""Fixtures of the campaign and notification tests: a database of their own (audiences count every
customer in it), the local provider server, the settings that point the real SDKs at it, an
in-process runtime and a job runner that executes queued jobs through the real command log."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from ombaro import commands, notifications
from ombaro.campaigns import reconcile, sending
from ombaro.config import load_settings
from ombaro.messaging import Runtime, TokenBucket
from ombaro.models.jobs import Job
from ombaro.providers.channels import configured_channels
from tests.campaigns.provider_server import ProviderServer
from tests.conftest import migrate
from tests.helpers import unique_mobile

TWILIO_SID = "AC" + "0" * 30
TWILIO_TOKEN = "twilio-auth-token-for-tests"
PUBLIC_BASE = "https://ops.ombaro.test"


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


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sign_sendgrid(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


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


# --- data -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    mobile: str
    name: str


def zone_at(hour: int) -> str:
    """A zone where the local time is now `hour`:xx (Etc/GMT-N is N hours ahead of UTC)."""
    ahead = (hour - dt.datetime.now(dt.UTC).hour) % 24
    ahead = ahead - 24 if ahead > 14 else ahead
    return f"Etc/GMT{-ahead:+d}" if ahead else "UTC"


def add_customers(engine: Engine, n: int, *, city: str, tier: str = "gold", prefs: dict[str, Any] | None = None,
                  born: dt.date = dt.date(1990, 6, 15), status: str = "active", timezone: str | None = "day",
                  mobile_suffix: str | None = None, name: str = "Asha Rao") -> list[Person]:
    """Customers with their auth user and profile, inserted set-based. By default they live where
    it is early afternoon now, out of the quiet hours (timezone=None: the platform's zone)."""
    if timezone == "day":
        timezone = zone_at(13)
    people = []
    rows_u, rows_p, rows_c = [], [], []
    for _ in range(n):
        uid = uuid.uuid4()
        tag = uid.hex[:10]
        mobile = unique_mobile()
        if mobile_suffix:
            mobile = mobile[: -len(mobile_suffix)] + mobile_suffix
        email = f"c.{tag}@example.test"
        people.append(Person(uid, email, mobile, name))
        rows_u.append({"id": uid, "email": email})
        rows_p.append({"id": uid, "name": name, "mobile": mobile, "born": born, "status": status,
                       "address": {"city": city}, "prefs": {"timezone": timezone} if timezone else None})
        rows_c.append({"id": uid, "tier": tier, "prefs": prefs if prefs is not None else {"email": True, "sms": True}})
    import json

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :email, '!')"), rows_u)
        conn.execute(text(
            "INSERT INTO user_profiles (id, name, mobile, role, status, date_of_birth, address, preferences) "
            "VALUES (:id, :name, :mobile, 'customer', :status, :born, CAST(:address AS jsonb), CAST(:prefs AS jsonb))"),
            [{**r, "address": json.dumps(r["address"]), "prefs": json.dumps(r["prefs"]) if r["prefs"] else None}
             for r in rows_p])
        conn.execute(text("INSERT INTO customers (id, membership_tier, communication_preferences) "
                          "VALUES (:id, :tier, CAST(:prefs AS jsonb))"),
                     [{**r, "prefs": json.dumps(r["prefs"])} for r in rows_c])
    return people


def a_city() -> str:
    return f"Testville-{secrets.token_hex(4)}"


_STAFF: dict[str, uuid.UUID] = {}


def staff_employee(engine: Engine) -> uuid.UUID:
    """An employee to be campaigns.created_by / approved_by (one per database: the chaos tests'
    runtimes use databases of their own)."""
    key = engine.url.render_as_string(hide_password=False)
    if key not in _STAFF:
        uid = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :e, '!')"),
                         {"id": uid, "e": f"mkt.{uid.hex[:8]}@ombaro.test"})
            conn.execute(text(
                "INSERT INTO employees (id, employee_code, name, email, mobile, department, designation, joining_date) "
                "VALUES (:id, :code, 'Meena', :e, '+919800000099', 'marketing_department', 'Manager', '2025-04-01')"),
                {"id": uid, "code": f"E-{uid.hex[:8]}", "e": f"mkt.{uid.hex[:8]}@ombaro.test"})
        _STAFF[key] = uid
    return _STAFF[key]


EMAIL_CONTENT = {"subject": "$first_name, your $tier treat in $city",
                 "body": "Hi $first_name,\n\nBook a massage in $city this week and save 20%."}
SMS_CONTENT = {"body": "Hi $first_name, 20% off at OMBARO partners in $city this week."}


def add_campaign(engine: Engine, *, city: str | None = None, ctype: str = "multi_channel",
                 content: dict[str, Any] | None = None, status: str = "active",
                 target: dict[str, Any] | None = None, end_date: dt.datetime | None = None,
                 budget: Decimal = Decimal("100000.00")) -> uuid.UUID:
    import json

    creator = staff_employee(engine)
    content = content if content is not None else {"email": EMAIL_CONTENT, "sms": SMS_CONTENT}
    target = target if target is not None else {"city": [city]}
    with engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO campaigns (name, type, status, target_audience, content, start_date, end_date, budget, "
            "created_by, approved_by) VALUES ('Test', :type, :status, CAST(:target AS jsonb), CAST(:content AS jsonb), "
            "now(), :end, :budget, :creator, :creator) RETURNING id"),
            {"type": ctype, "status": status, "target": json.dumps(target), "content": json.dumps(content),
             "end": end_date, "budget": budget, "creator": creator}).scalar_one()


# --- running jobs in this process ------------------------------------------------------------------

HANDLERS: dict[str, Callable[[Session, Runtime, Job, commands.Progress], dict[str, Any]]] = {
    sending.KIND_START: sending.start,
    sending.KIND_CHUNK: sending.send_chunk,
    "campaigns.start_due": sending.start_due,
    notifications.KIND_DISPATCH: notifications.dispatch,
    "notifications.reminders": notifications.scan_reminders,
}


def execute(rt: Runtime, job_id: uuid.UUID) -> str:
    with rt.engine.connect() as conn:
        kind = conn.execute(text("SELECT kind FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()

    def handler(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        if kind == "campaigns.reconcile":
            return reconcile.reconcile(rt)
        return HANDLERS[kind](session, rt, job, progress)

    return commands.execute(job_id, handler, engine=rt.engine, lease_seconds=60)


def submit(rt: Runtime, kind: str, params: dict[str, Any], *, key: str | None = None,
           scope: str = "tests") -> uuid.UUID:
    with Session(rt.engine) as session, session.begin():
        return commands.submit(session, kind, params, enqueue=rt.enqueue, key=key, scope=scope).job.id


def run_queued(rt: Runtime, campaign_id: uuid.UUID | None = None, *, until_idle: bool = True,
               timeout: float = 60) -> list[tuple[str, str]]:
    """Execute the queued jobs (of one campaign, or of every campaign and notification kind) whose
    time has come, in order, until none is left that is due. Returns (kind, outcome)."""
    ran = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.engine.connect() as conn:
            where = "idempotency_scope = :scope" if campaign_id else "(kind LIKE 'campaigns.%' OR kind LIKE " \
                "'notifications.%')"
            row = conn.execute(text(
                f"SELECT id, kind FROM jobs WHERE status = 'queued' AND run_after <= now() AND {where} "
                "ORDER BY created_at LIMIT 1"), {"scope": sending.scope(campaign_id) if campaign_id else None}).first()
        if row is None:
            if not until_idle:
                break
            break
        ran.append((row.kind, execute(rt, row.id)))
    return ran


def deliveries(engine: Engine, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT * FROM message_deliveries WHERE campaign_id = :c ORDER BY user_id, channel"),
            {"c": campaign_id}).mappings()]


def start_and_run(rt: Runtime, campaign_id: uuid.UUID, *, chunk_size: int | None = None) -> list[tuple[str, str]]:
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, rt.enqueue, campaign_id, key=f"test:{uuid.uuid4()}", chunk_size=chunk_size)
    return run_queued(rt, campaign_id)


def with_settings(rt: Runtime, **messaging: Any) -> Runtime:
    settings = replace(rt.settings, messaging=replace(rt.settings.messaging, **messaging))
    return replace(rt, settings=settings)


class Relay:
    """What the scheduler's leader does every 10 s, every 0.3 s here: hand due jobs to the broker."""

    def __init__(self, engine: Engine, redis_url: str, *, stale_seconds: int = 2) -> None:
        from workers.app import enqueuer

        self.engine, self.enqueue, self.stale = engine, enqueuer(redis_url), stale_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                with Session(self.engine) as session, session.begin():
                    commands.relay(session, self.enqueue, stale_seconds=self.stale)
            except Exception:  # a relay tick failing is retried at the next tick, as in the scheduler
                time.sleep(0.3)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)
