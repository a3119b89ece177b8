"""The console's in-process call to /api/v1: a request built as a client would send it, run through
the app's whole WSGI stack (sanitation, authentication, permissions, row-level security, audit,
error handlers), its answer read back. No test tooling: `wsgi_environ` builds the environ werkzeug's
`EnvironBuilder` would (tests/console/test_api_client.py compares them), in a third of the time."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from io import BytesIO
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from flask import Flask
from werkzeug.datastructures import Headers, iter_multi_items
from werkzeug.urls import iri_to_uri
from werkzeug.utils import get_content_type

from ombaro.identity.tokens import Claims
from web.auth import FRESH_PRINCIPAL, VERIFIED_CLAIMS

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


def _latin1(value: str) -> str:
    """PEP 3333: a native string whose code points are the bytes of the UTF-8 text."""
    return value.encode().decode("latin1")


def wsgi_environ(method: str, path: str, *, base_url: str, remote_addr: str, headers: Mapping[str, str],
                 body: bytes | None = None, content_type: str | None = None,
                 query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The WSGI environ of a request from `remote_addr` to `base_url` + `path`, key for key what
    `werkzeug.test.EnvironBuilder(...).get_environ()` makes of the same arguments."""
    target = urlsplit(path)
    if query is not None and "?" in path:
        raise ValueError("Query string is defined in the path and as an argument")
    query_string = target.query if query is None else urlencode(
        [item for item in iter_multi_items(query) if item[1] is not None], safe="!$'()*,/:;?@")
    scheme, host, script_root, rest, fragment = urlsplit(iri_to_uri(base_url))
    if rest or fragment:
        raise ValueError("base url must not contain a query string or fragment")
    server_name, sep, port = host.partition(":")
    server_port = port if sep and port.isdigit() else ("443" if scheme == "https" else "80")
    environ: dict[str, Any] = {
        "REMOTE_ADDR": remote_addr,
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": _latin1(unquote(script_root.rstrip("/"))),
        "PATH_INFO": _latin1(unquote(iri_to_uri(target.path))),
        "QUERY_STRING": _latin1(query_string),
        "REQUEST_URI": _latin1(path),  # non-standard: mod_wsgi, uWSGI
        "RAW_URI": _latin1(path),  # non-standard: gunicorn
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(int(server_port)),
        "HTTP_HOST": host,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        if name.lower() not in ("content-type", "content-length"):
            environ[f"HTTP_{name.upper().replace('-', '_')}"] = value
    return environ


def call(app: Flask, method: str, path: str, *, base_url: str, remote_addr: str, headers: Mapping[str, str],
         json: Any = None, query: Mapping[str, Any] | None = None,
         verified: tuple[str, Claims] | None = None) -> Answer:
    """One request to `app` as if it came from `remote_addr` to `base_url`, answered in full;
    `verified`: a bearer token and its claims as the caller verified them (`VERIFIED_CLAIMS`).

    The caller gives it a fresh app context: a request context pushed inside the page's would share
    the page's `g` (its user, its database session)."""
    # The app's JSON provider, as for any JSON the app writes (dates, decimals).
    body = None if json is None else app.json.dumps(json).encode()
    environ = wsgi_environ(method, path, base_url=base_url, remote_addr=remote_addr, headers=headers, body=body,
                           content_type=None if json is None else "application/json", query=query)
    # The page's only identity check is its first call's (web/console/session.py): a role change or
    # an ended login applies to the very next page, not within the principal cache's second.
    environ[FRESH_PRINCIPAL] = True
    if verified is not None:
        environ[VERIFIED_CLAIMS] = verified
    status_line = "500 INTERNAL SERVER ERROR"
    response_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        nonlocal status_line, response_headers
        status_line, response_headers = status, headers
        return chunks.append  # WSGI's legacy write()

    answer: Iterable[bytes] = app(environ, start_response)
    try:
        chunks.extend(answer)  # read inside the app context: a streamed answer (a CSV export) needs it
    finally:
        if close := getattr(answer, "close", None):
            close()
    data = b"".join(chunks)
    received = Headers(response_headers)
    # As `app.response_class` reads it: an answer without a Content-Type is the default (text/html).
    content = received.get("Content-Type") or get_content_type(app.response_class.default_mimetype or "", "utf-8")
    mimetype = content.split(";", 1)[0].strip().lower()
    parsed: Any = None
    # As `Response.get_json(silent=True)`: JSON (application/json or application/*+json) or nothing.
    if mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json")):
        try:
            parsed = app.json.loads(data)
        except ValueError:
            parsed = None
    return Answer(int(status_line.split(None, 1)[0]), parsed, content, data,
                  received.get("Content-Disposition", ""))
