"""The console's in-process call to /api/v1: a request built as a client would send it, run through
the app's whole WSGI stack (sanitation, authentication, permissions, row-level security, audit,
error handlers), its answer read back. No test tooling: `EnvironBuilder` only builds the environ."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    content_type: str
    data: bytes
    disposition: str = ""

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def message(self) -> str:
        """A problem+json answer as one readable line, field errors included."""
        if self.ok or not isinstance(self.body, Mapping):
            return ""
        text = str(self.body.get("detail") or self.body.get("title") or f"HTTP {self.status}")
        errors = self.body.get("errors")
        if isinstance(errors, Mapping):
            text += " — " + "; ".join(f"{field}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                      for field, v in errors.items())
        return text


def call(app: Flask, method: str, path: str, *, base_url: str, remote_addr: str, headers: Mapping[str, str],
         json: Any = None, query: Mapping[str, Any] | None = None) -> Answer:
    """One request to `app` as if it came from `remote_addr` to `base_url`, answered in full.

    The caller gives it a fresh app context: a request context pushed inside the page's would share
    the page's `g` (its user, its database session)."""
    builder = EnvironBuilder(
        path=path, base_url=base_url, method=method, query_string=query, headers=list(headers.items()),
        # The app's JSON provider, as for any JSON the app writes (dates, decimals).
        data=None if json is None else app.json.dumps(json),
        content_type=None if json is None else "application/json",
        environ_base={"REMOTE_ADDR": remote_addr})
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    status_line = "500 INTERNAL SERVER ERROR"
    response_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        nonlocal status_line, response_headers
        status_line, response_headers = status, headers
        return chunks.append  # WSGI's legacy write()

    body: Iterable[bytes] = app(environ, start_response)
    try:
        chunks.extend(body)  # read inside the app context: a streamed answer (a CSV export) needs it
    finally:
        if close := getattr(body, "close", None):
            close()
    response = app.response_class(b"".join(chunks), status=status_line, headers=response_headers)
    return Answer(response.status_code, response.get_json(silent=True) if response.is_json else None,
                  response.content_type or "", response.get_data(),
                  response.headers.get("Content-Disposition", ""))
