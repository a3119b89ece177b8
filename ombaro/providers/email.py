"""Email through SendGrid's v3 mail/send with the `sendgrid` SDK.

A campaign's emails share one content with substitution tags, so up to SendGrid's limit of 1,000
personalizations go in one request: each personalization carries its recipient, rendered subject,
List-Unsubscribe headers, the tag values and `custom_args.delivery_id` (echoed back in the Event
Webhook, which is how events find their delivery). Messages without a shared template go one per
request.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import time
import urllib.error
from collections.abc import Sequence
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from ombaro.config import MessagingSettings
from ombaro.providers import error_of_status, record_call, request_headers
from ombaro.providers.channels import BatchTemplate, Message, Result

MAX_PERSONALIZATIONS = 1000  # SendGrid: at most 1,000 personalizations (and recipients) per request
# Good enough to keep one malformed address from failing a whole request with a 400.
PLAUSIBLE_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_FIELD = re.compile(r"^personalizations\.(\d+)\.")


class SendGridEmail:
    provider = "sendgrid"
    per_request = MAX_PERSONALIZATIONS

    def __init__(self, settings: MessagingSettings) -> None:
        self.client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_host)
        self.client.client.timeout = settings.provider_timeout_seconds
        name, address = email.utils.parseaddr(settings.email_from)
        self.sender = {"email": address, **({"name": name} if name else {})}

    def send(self, messages: Sequence[Message]) -> list[Result]:
        results: dict[str, Result] = {}
        ready: list[Message] = []
        for m in messages:
            if PLAUSIBLE_ADDRESS.match(m.to):
                ready.append(m)
            else:
                results[m.ref] = Result(m.ref, "failed", error=f"invalid email address {m.to!r}")
        groups: dict[str, list[Message]] = {}
        for m in ready:
            groups.setdefault(m.template.key if m.template else f"single:{m.ref}", []).append(m)
        for group in groups.values():
            for start in range(0, len(group), MAX_PERSONALIZATIONS):
                batch = group[start:start + MAX_PERSONALIZATIONS]
                for result in self._post(batch):
                    results[result.ref] = result
        return [results[m.ref] for m in messages]

    def request_body(self, batch: Sequence[Message]) -> dict[str, Any]:
        template = batch[0].template
        personalizations = []
        for m in batch:
            entry: dict[str, Any] = {"to": [{"email": m.to}], "custom_args": {"delivery_id": m.ref}}
            if m.subject:
                entry["subject"] = m.subject
            if m.headers:
                entry["headers"] = dict(m.headers)
            if template is not None and m.substitutions:
                entry["substitutions"] = dict(m.substitutions)
            personalizations.append(entry)
        text, html = (template.text, template.html) if template else (batch[0].body, batch[0].html)
        content = [{"type": "text/plain", "value": text}]
        if html:
            content.append({"type": "text/html", "value": html})
        return {"from": self.sender, "subject": batch[0].subject or "(no subject)",
                "personalizations": personalizations, "content": content}

    def _post(self, batch: Sequence[Message]) -> list[Result]:
        try:
            # What SendGridAPIClient.send does, plus our request id header.
            response = self.client.client.mail.send.post(request_body=self.request_body(batch),
                                                         request_headers=request_headers())
        except HTTPError as exc:
            record_call(self.provider, error_of_status(int(exc.status_code)), f"HTTP {exc.status_code}")
            return self._refused(batch, exc)
        except urllib.error.URLError as exc:
            # Raised while connecting or writing the request: SendGrid did not get it.
            record_call(self.provider, "unavailable", str(exc.reason))
            return [Result(m.ref, "retry", error=f"connection failed: {exc.reason}") for m in batch]
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            # The request went out and no answer came back: it may or may not have been accepted.
            record_call(self.provider, "unavailable", f"{type(exc).__name__}: {exc}")
            return [Result(m.ref, "unknown", error=f"no answer: {type(exc).__name__}: {exc}") for m in batch]
        record_call(self.provider)
        message_id = _header(response.headers, "X-Message-Id")
        return [Result(m.ref, "sent", message_id) for m in batch]

    def _refused(self, batch: Sequence[Message], exc: HTTPError) -> list[Result]:
        status = int(exc.status_code)
        detail = _body_text(exc.body)
        if status == 429 or status >= 500:
            retry_after = _retry_after(exc.headers)
            return [Result(m.ref, "retry", error=f"HTTP {status}: {detail}", retry_after=retry_after) for m in batch]
        if status in (401, 403):
            # Our credentials, not the messages: wait for someone to fix the key rather than fail them all.
            return [Result(m.ref, "retry", error=f"HTTP {status}: {detail}", retry_after=300) for m in batch]
        bad = _bad_personalizations(exc.body)
        if bad:  # only those are wrong; the others were not sent either and can go again at once
            return [Result(m.ref, "failed", error=f"HTTP {status}: {detail}") if i in bad
                    else Result(m.ref, "retry", error="batch refused for another recipient", retry_after=0)
                    for i, m in enumerate(batch)]
        return [Result(m.ref, "failed", error=f"HTTP {status}: {detail}") for m in batch]


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    return str(value) if value else None


def _retry_after(headers: Any) -> float | None:
    value = _header(headers, "Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    reset = _header(headers, "X-RateLimit-Reset")  # epoch seconds when the window resets
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def _body_text(body: Any) -> str:
    raw = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return raw[:500]


def _bad_personalizations(body: Any) -> set[int]:
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError, TypeError):
        return set()
    found = set()
    for error in errors:
        match = _FIELD.match(str(error.get("field") or ""))
        if match:
            found.add(int(match.group(1)))
    return found


__all__ = ["MAX_PERSONALIZATIONS", "BatchTemplate", "SendGridEmail"]
