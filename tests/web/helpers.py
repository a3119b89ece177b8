"""The demo marketplace at a small scale served by the app (the `demo` fixture's world), and what a
refused request may still write."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import Engine, text

from ombaro.config import load_settings
from ombaro.identity import tokens

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
