"""The demo marketplace at a small scale, served by the app, with a super admin's token: what the
bad-input tests throw their inputs at."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import Engine, create_engine, text

from devtools.demo import PLATFORM_ZONE, enable_demo_logins, seed_demo
from ombaro.config import load_settings
from ombaro.identity import tokens
from tests.conftest import migrate

# Tables a refused request may still write to: the audit log records every staff attempt.
WRITTEN_ON_REFUSAL = frozenset({"public.audit_log"})


@dataclass(frozen=True)
class Demo:
    url: str
    engine: Engine
    app: Flask
    today: dt.date
    admin_id: uuid.UUID

    @property
    def admin_token(self) -> str:
        """A fresh one each time: access tokens live 15 minutes, a session of tests longer."""
        return tokens.issue_access_token(load_settings(), self.admin_id, "super_admin")

    def client(self, *, admin: bool = True) -> Any:
        """A test client from an address of its own (rate limits count per address)."""
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.9"
        if admin:
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.admin_token}"
        return client

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def fingerprint(self) -> dict[str, tuple[int, int]]:
        """Per table: rows and the newest row version (max xmin). An insert or update raises the
        second, a delete lowers the first: any write to any table changes the fingerprint."""
        with self.engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname IN ('public', 'auth') "
                "ORDER BY 1")).scalars().all()
            watched = [t for t in tables if t not in WRITTEN_ON_REFUSAL]
            sql = " UNION ALL ".join(
                f"SELECT '{t}', count(*), coalesce(max(xmin::text::bigint), 0) FROM {t}" for t in watched)
            return {name: (rows, newest) for name, rows, newest in conn.execute(text(sql))}


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
