"""Running the CLI in this process (`cli.main` with captured output) against the session's
database and Redis (the `service_env` fixture exports DATABASE_URL and REDIS_URL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cli import main
from ombaro import commands


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)  # fails unless stdout is exactly one JSON document


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], service_env: dict[str, str]) -> Callable[..., Ran]:
    def run(*argv: str) -> Ran:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def add_job(engine: Engine, kind: str = "system.ping", params: dict[str, Any] | None = None, *,
            status: str = "queued", error: dict[str, Any] | None = None) -> uuid.UUID:
    """A job in the command log, not handed to any broker; its status set as given."""
    with Session(engine) as session, session.begin():
        job = commands.submit(session, kind, params or {}, enqueue=lambda *_: None).job
        job_id = job.id
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = :s, error = CAST(:e AS jsonb), enqueued_at = NULL, "
                          "finished_at = CASE WHEN :s IN ('succeeded', 'failed') THEN now() END WHERE id = :id"),
                     {"s": status, "e": json.dumps(error) if error else None, "id": job_id})
    return job_id
