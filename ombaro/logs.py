"""Structured logs: one JSON object per line, carrying the request id that follows a command from
the API into the worker and into provider calls (docs/observability.md).

The ids live in context variables: the web sets the request id per request, `commands.execute`
sets request id, job id and kind from the job row for the duration of a job, the scheduler sets
a fresh request id per firing. A filter on the handler copies them onto every record, so any
logger (ours, SQLAlchemy's, Celery's) carries them without being passed anything.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from ombaro import logmask

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ombaro_request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ombaro_job_id", default=None)
job_kind: contextvars.ContextVar[str | None] = contextvars.ContextVar("ombaro_job_kind", default=None)

# A caller's X-Request-ID is kept when it is a plain token (uuid, ULID, a load balancer's trace id):
# printable, no spaces or quotes, at most 128 characters. Anything else is replaced by our own.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}$")
FORMATS = ("json", "text")
_CONTEXT_FIELDS = ("request_id", "job_id", "kind")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """`value` if it is acceptable as a request id, else None."""
    if value is None:
        return None
    value = value.strip()
    return value if _SANE_REQUEST_ID.match(value) else None


@contextlib.contextmanager
def context(*, request: str | None = None, job: str | None = None, kind: str | None = None) -> Iterator[None]:
    """Set the ids for the block (only those given), restoring the previous values after it."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    for var, value in ((request_id, request), (job_id, job), (job_kind, kind)):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request id, job id and kind onto each record (unless given in `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id), ("job_id", job_id), ("kind", job_kind)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, process, then request_id / job_id / kind when known, and the
    exception text when there is one. Secrets are masked in the exception text as in messages."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_text:
            entry["exc_info"] = logmask.mask(record.exc_text)
        elif record.exc_info:
            entry["exc_info"] = logmask.mask(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = logmask.mask(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a developer's terminal: the same fields on one readable line (and the masked traceback)."""

    def __init__(self, process: str) -> None:
        super().__init__("%(asctime)s %(levelname)s [" + process + "] %(name)s: %(message)s%(ids)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{n}={getattr(record, n)}" for n in _CONTEXT_FIELDS if getattr(record, n, None) is not None]
        record.ids = f" ({' '.join(ids)})" if ids else ""
        if record.exc_text:  # formatted (and masked) by the filter, or by another handler before us
            record.exc_text = logmask.mask(record.exc_text)
        return logmask.mask(super().format(record))

    def formatException(self, ei: Any) -> str:
        return logmask.mask(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return logmask.mask(super().formatStack(stack_info))


def configure(*, level: str, fmt: str, process: str) -> None:
    """Install one stderr handler on the root logger with the chosen format (idempotent: a second
    call replaces the handler it installed, leaving other handlers, e.g. pytest's, alone)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} must be one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ombaro", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ombaro = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else TextFormatter(process))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logmask.install()
