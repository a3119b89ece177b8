"""SMS and WhatsApp through Twilio's Messages API with the `twilio` SDK.

Twilio takes one message per request, so a batch is sent by a small thread pool (the provider's
rate is kept by the token bucket in front of it, not here). Each message's status callback URL
carries our delivery id (`?ref=`), so a callback that overtakes our own bookkeeping still finds its
delivery. A message whose request timed out can be looked up afterwards (`find_sent`): Twilio
creates the message resource within the API call, so one that is not listed was never accepted.

The SDK builds each request and reads each answer; the bytes go through `KeepAliveHttpClient`, the
SDK's pluggable HTTP client implemented on `http.client` with one kept-alive connection per thread.
Through `requests` (the SDK's default), preparing a request and reading the environment's proxy
settings cost more CPU than the SDK's own work: a campaign's SMS are CPU-bound in the worker. When
the environment names a proxy for the API's host, the SDK's `requests` client is used instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import logging
import select
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import certifi
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ombaro.config import MessagingSettings
from ombaro.providers import error_of_status, map_in_context, record_calls, request_headers
from ombaro.providers.channels import Message, Result

# Twilio error codes that no retry will fix: invalid or unreachable 'To', the recipient replied
# STOP, the number cannot receive this channel, the region is not enabled.
PERMANENT_CODES = {21211, 21214, 21217, 21401, 21408, 21601, 21610, 21612, 21614, 21635, 63003, 63024}


# The SDK logs every request and response at INFO: ten lines per SMS.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class _HeadersKeepingClient(TwilioHttpClient):
    """Twilio's HTTP client, keeping each thread's last response so a 429's Retry-After can be read
    (TwilioRestException does not carry the headers)."""

    def __init__(self, *, timeout: float, pool: int) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        if self.session is not None:
            self.session.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
            self.session.mount("https://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        self._local.response = None
        headers = {**(headers or {}), **request_headers()}
        response = super().request(method, uri, params, data, headers, auth, timeout, allow_redirects)
        self._local.response = response
        return response

    def last_headers(self) -> dict[str, str]:
        response = getattr(self._local, "response", None)
        return dict(response.headers or {}) if response is not None else {}


class NotSent(Exception):
    """The connection could not be made: no byte of the request left."""


class NoAnswer(Exception):
    """The request may have gone out and no (complete) answer came: a timeout, a dropped connection."""


class KeepAliveHttpClient(HttpClient):
    """The Twilio SDK's HTTP client interface on `http.client`: one kept-alive connection per thread
    and host, the request written in one send, the last response's headers kept per thread (a 429's
    Retry-After; TwilioRestException does not carry them). Raises NotSent or NoAnswer when no
    answer came."""

    def __init__(self, *, timeout: float) -> None:
        super().__init__(logger=logging.getLogger("twilio.http_client"), is_async=False, timeout=timeout)
        self._local = threading.local()
        self._tls = ssl.create_default_context(cafile=certifi.where())

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        self._local.response = None
        url = urllib.parse.urlsplit(uri)
        target = url.path or "/"
        query = "&".join(q for q in (url.query, urllib.parse.urlencode(params or {}, doseq=True)) if q)
        if query:
            target = f"{target}?{query}"
        sent = {**(headers or {}), **request_headers()}
        if auth:
            sent["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        body: bytes | None = None
        if method.upper() in ("POST", "PUT"):
            if sent.get("Content-Type", "").endswith("json"):
                body = json.dumps(data or {}).encode()
            else:
                body = urllib.parse.urlencode(data or {}, doseq=True).encode()
        conn = self._connection(url.scheme, url.netloc, timeout or self.timeout)
        try:
            conn.request(method.upper(), target, body=body, headers=sent)
            answer = conn.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        if answer.will_close:
            conn.close()
        response = Response(answer.status, content.decode("utf-8", errors="replace"), dict(answer.getheaders()))
        self._local.response = response
        return response

    def _connection(self, scheme: str, netloc: str, timeout: float | None) -> http.client.HTTPConnection:
        """This thread's open connection to the host, or a new one (NotSent if it cannot be made)."""
        connections: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "connections", {})
        conn = connections.get((scheme, netloc))
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the server closed the idle connection: open another, as urllib3 does
        if conn is None:
            conn = (http.client.HTTPSConnection(netloc, timeout=timeout, context=self._tls) if scheme == "https"
                    else http.client.HTTPConnection(netloc, timeout=timeout))
            connections[(scheme, netloc)] = conn
        if conn.timeout != timeout:  # a call with its own timeout
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        if conn.sock is None:
            try:
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def last_headers(self) -> dict[str, str]:
        response = getattr(self._local, "response", None)
        return dict(response.headers or {}) if response is not None else {}


def _dropped(sock: Any) -> bool:
    """An idle kept-alive socket that is readable has been closed by the peer (or is unusable)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class TwilioMessages:
    """`channel` is 'sms' or 'whatsapp' (WhatsApp addresses are `whatsapp:+<E.164>`)."""

    per_request = 1

    def __init__(self, settings: MessagingSettings, channel: str) -> None:
        if channel not in ("sms", "whatsapp"):
            raise ValueError(channel)
        self.channel = channel
        self.provider = f"twilio_{channel}"
        self.concurrency = settings.provider_concurrency
        self.http: KeepAliveHttpClient | _HeadersKeepingClient
        if requests.utils.get_environ_proxies(settings.twilio_api_base):
            self.http = _HeadersKeepingClient(timeout=settings.provider_timeout_seconds, pool=self.concurrency)
        else:
            self.http = KeepAliveHttpClient(timeout=settings.provider_timeout_seconds)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=self.http)
        self.client.api.base_url = settings.twilio_api_base  # a local server in tests and benchmarks
        sender = settings.sms_from if channel == "sms" else settings.whatsapp_from
        if channel == "whatsapp" and not sender.startswith("whatsapp:"):
            sender = f"whatsapp:{sender}"
        self.sender = sender
        self.callback_base = (f"{settings.public_base_url}/api/v1/webhooks/twilio"
                              if settings.public_base_url else None)
        self._pool: ThreadPoolExecutor | None = None
        self._quiet_until = 0.0  # after a 429, the rest of a batch waits instead of asking again

    def address(self, number: str) -> str:
        return f"whatsapp:{number}" if self.channel == "whatsapp" and not number.startswith("whatsapp:") else number

    def send(self, messages: Sequence[Message]) -> list[Result]:
        if len(messages) <= 1 or self.concurrency == 1:
            results = [self._send(m) for m in messages]
        else:
            if self._pool is None:  # created lazily: after Celery's fork, in the process that uses it
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self.provider)
            results = list(map_in_context(self._pool, self._send, messages))
        called = [r for r in results if r.called]
        record_calls(self.provider, [(_error_of(r), r.error or "") for r in called if r.outcome != "sent"],
                     len(called))
        return results

    def _send(self, message: Message) -> Result:
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            return Result(message.ref, "retry", error="Twilio asked us to slow down (429)", retry_after=wait,
                          called=False)
        arguments: dict[str, Any] = {"to": self.address(message.to), "body": message.body}
        if self.sender.startswith("MG"):
            arguments["messaging_service_sid"] = self.sender
        else:
            arguments["from_"] = self.sender
        if self.callback_base:
            arguments["status_callback"] = f"{self.callback_base}?ref={message.ref}"
        try:
            created = self.client.api.v2010.account.messages.create(**arguments)
        except TwilioRestException as exc:
            return self._refused(message, exc)
        except NotSent as exc:
            return Result(message.ref, "retry", error=f"connection failed: {exc}")
        except NoAnswer as exc:
            return Result(message.ref, "unknown", error=f"no answer: {exc}")
        except requests.exceptions.ConnectTimeout as exc:
            return Result(message.ref, "retry", error=f"connect timeout: {exc}")
        except requests.exceptions.ReadTimeout as exc:
            return Result(message.ref, "unknown", error=f"no answer in time: {exc}")
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                return Result(message.ref, "retry", error=f"connection failed: {exc}")
            return Result(message.ref, "unknown", error=f"connection lost: {exc}")
        except requests.exceptions.RequestException as exc:
            return Result(message.ref, "unknown", error=f"{type(exc).__name__}: {exc}")
        return Result(message.ref, "sent", created.sid)

    def _refused(self, message: Message, exc: TwilioRestException) -> Result:
        status, code = int(exc.status), int(exc.code or 0)
        error = f"HTTP {status} code {code}: {exc.msg}"[:500]
        if status == 429 or status >= 500:
            retry_after = _retry_after(self.http.last_headers())
            if status == 429:
                self._quiet_until = max(self._quiet_until, time.monotonic() + (retry_after or 1.0))
            return Result(message.ref, "retry", error=error, retry_after=retry_after)
        if status in (401, 403) and code not in PERMANENT_CODES:
            return Result(message.ref, "retry", error=error, retry_after=300)  # our credentials, not the message
        return Result(message.ref, "failed", error=error)

    def find_sent(self, *, to: str, body: str, since: dt.datetime, until: dt.datetime,
                  exclude: set[str] | None = None) -> str | None:
        """The sid of a message to `to` created in [since, until] with this body, if Twilio has one."""
        listed = self.client.api.v2010.account.messages.list(
            to=self.address(to), date_sent_after=since - dt.timedelta(seconds=5), limit=100)
        exclude = exclude or set()
        for message in listed:
            created = message.date_created or message.date_sent
            in_window = created is None or since - dt.timedelta(seconds=5) <= created <= until
            if in_window and message.body == body and message.sid not in exclude:
                return str(message.sid)
        return None


def _error_of(result: Result) -> str:
    status = result.error.split()[1] if result.error and result.error.startswith("HTTP ") else ""
    return error_of_status(int(status)) if status.isdigit() else "unavailable"


def _retry_after(headers: dict[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was refused or never opened: no byte of the request left."""
    cause: Any = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    text = f"{type(reason).__name__} {reason}"
    return any(word in text for word in ("NewConnectionError", "ConnectionRefused", "Connection refused",
                                          "NameResolution", "Failed to establish"))
