"""Push through Firebase Cloud Messaging's HTTP v1 API, when a service-account file is configured
(OMBARO_FCM_CREDENTIALS); the outbox otherwise (ombaro/providers/channels.py).

Authentication is OAuth 2 with the service account: a JWT assertion signed with its private key
(RS256) is exchanged at its `token_uri` for an access token, cached until shortly before it
expires. One request per device token; a small thread pool sends a batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import requests
from requests.adapters import HTTPAdapter

from ombaro.config import MessagingSettings
from ombaro.providers import error_of_status, map_in_context, record_call, request_headers
from ombaro.providers.channels import Message, Result

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# FCM answers these for a token that will never work again: the device row is disabled.
UNREGISTERED = ("UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH")


class FcmPush:
    provider = "fcm"
    per_request = 1

    def __init__(self, settings: MessagingSettings) -> None:
        account = json.loads(Path(settings.fcm_credentials_file).read_text())
        self.project = account["project_id"]
        self.client_email = account["client_email"]
        self.private_key = account["private_key"]
        self.token_uri = account.get("token_uri") or "https://oauth2.googleapis.com/token"
        self.url = f"{settings.fcm_base_url.rstrip('/')}/v1/projects/{self.project}/messages:send"
        self.timeout = settings.provider_timeout_seconds
        self.concurrency = settings.provider_concurrency
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.concurrency)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._quiet_until = 0.0  # after a 429, the rest of a batch waits instead of asking again

    def access_token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if self._token and not refresh and self._token[1] > time.time() + 60:
                return self._token[0]
            now = int(time.time())
            assertion = jwt.encode({"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
                                    "iat": now, "exp": now + 3600}, self.private_key, algorithm="RS256")
            response = self.session.post(self.token_uri, timeout=self.timeout, data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
            response.raise_for_status()
            body = response.json()
            self._token = (body["access_token"], now + float(body.get("expires_in", 3600)))
            return self._token[0]

    def send(self, messages: Sequence[Message]) -> list[Result]:
        if len(messages) <= 1:
            return [self._send_one(m) for m in messages]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="fcm")
        return list(map_in_context(self._pool, self._send_one, messages))

    def payload(self, message: Message) -> dict[str, Any]:
        return {"message": {"token": message.to,
                            "notification": {"title": message.subject or "", "body": message.body},
                            "data": {**{k: str(v) for k, v in message.data.items()}, "delivery_id": message.ref}}}

    def _send_one(self, message: Message, *, retried_auth: bool = False) -> Result:
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            return Result(message.ref, "retry", error="FCM asked us to slow down (429)", retry_after=wait,
                          called=False)
        try:
            token = self.access_token(refresh=retried_auth)
            response = self.session.post(self.url, json=self.payload(message), timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {token}", **request_headers()})
        except requests.exceptions.ConnectTimeout as exc:
            record_call(self.provider, "unavailable", str(exc))
            return Result(message.ref, "retry", error=f"connect timeout: {exc}")
        except requests.exceptions.ReadTimeout as exc:
            record_call(self.provider, "unavailable", str(exc))
            return Result(message.ref, "unknown", error=f"no answer in time: {exc}")
        except requests.exceptions.HTTPError as exc:  # the token endpoint refused
            record_call(self.provider, "rejected", f"token endpoint: {exc}")
            return Result(message.ref, "retry", error=f"FCM token refused: {exc}", retry_after=300)
        except requests.exceptions.RequestException as exc:
            record_call(self.provider, "unavailable", str(exc))
            return Result(message.ref, "unknown", error=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        record_call(self.provider, None if status == 200 else error_of_status(status), f"HTTP {status}")
        if status == 200:
            return Result(message.ref, "sent", str(response.json().get("name", "")))
        if status == 401 and not retried_auth:
            return self._send_one(message, retried_auth=True)
        error = f"HTTP {status}: {response.text[:300]}"
        if status == 429 or status >= 500:
            header = response.headers.get("Retry-After")
            retry_after = float(header) if header and header.isdigit() else None
            if status == 429:
                self._quiet_until = max(self._quiet_until, time.monotonic() + (retry_after or 1.0))
            return Result(message.ref, "retry", error=error, retry_after=retry_after)
        if status in (401, 403) and not any(code in response.text for code in UNREGISTERED):
            return Result(message.ref, "retry", error=error, retry_after=300)
        unregistered = any(code in response.text for code in UNREGISTERED)
        return Result(message.ref, "failed", error=("unregistered device: " if unregistered else "") + error)
