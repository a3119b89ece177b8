"""Jobs in the command log, in any status, not handed to any broker."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands


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
