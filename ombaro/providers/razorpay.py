"""Razorpay: the SDK adapter (production and tests, pointed anywhere with `base_url`) and the
development outbox, which answers like Razorpay without moving money.

Signatures (docs/pitfalls.md): a payment's is HMAC-SHA256 of `order_id|payment_id` with the key
secret; a webhook's is HMAC-SHA256 of the raw request body with the webhook secret. Both are
compared in constant time, over bytes exactly as received: a re-serialised body fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from typing import Any

import razorpay
import requests
import urllib3

from ombaro.providers import (
    Order,
    ProviderRejected,
    ProviderUnavailable,
    Refund,
    Transfer,
    as_dict,
    error_of_status,
    record_call,
    request_headers,
)

# Sent with every transfer; RazorpayX honours it for payouts. Our own guard does not rely on it:
# after an unknown outcome we look the transfer up by the key in its notes, over every transfer
# made since the first send (paginated), and never send again on a guess.
IDEMPOTENCY_HEADER = "X-Payout-Idempotency"
PAGE = 100  # Razorpay's largest `count`
# The provider's clock and ours differ: the look-up window opens this much before our first send.
CLOCK_SLACK_SECONDS = 300
# A search longer than this many pages is given up (the payout is held for finance, not re-sent).
MAX_PAGES = 500


def hmac_sha256(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(secret: str, message: bytes, signature: str) -> bool:
    if not secret or not signature:
        return False
    return hmac.compare_digest(hmac_sha256(secret, message), signature.strip())


class _StatusRecordingSession(requests.Session):
    """The SDK hides HTTP statuses behind its exceptions (a 429 arrives as BadRequestError); this
    session remembers the last status per thread so a throttled request is not taken as a refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.local.status = None
        response = super().request(method, url, *args, **kwargs)
        self.local.status = response.status_code
        return response


class RazorpayProvider:
    name = "razorpay"

    def __init__(self, *, key_id: str, key_secret: str, webhook_secret: str, base_url: str,
                 timeout_seconds: float = 10.0) -> None:
        self.key_id, self._key_secret, self._webhook_secret = key_id, key_secret, webhook_secret
        self._session = _StatusRecordingSession()
        self._client = razorpay.Client(session=self._session, auth=(key_id, key_secret), base_url=base_url)
        self._timeout = timeout_seconds

    # --- calls, with the SDK's errors translated to the interface's two --------------------------

    def _call(self, function: Any, *args: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {"timeout": self._timeout, "headers": {**request_headers(), **(headers or {})}}
        try:
            body = as_dict(function(*args, **options))
        except razorpay.errors.BadRequestError as exc:
            if getattr(self._session.local, "status", None) == 429:
                record_call(self.name, "throttled", str(exc))
                raise ProviderUnavailable(f"razorpay throttled the request (429): {exc}", answered=True) from exc
            record_call(self.name, "rejected", str(exc))
            raise ProviderRejected(str(exc) or "razorpay refused the request") from exc
        except (razorpay.errors.ServerError, razorpay.errors.GatewayError) as exc:
            status = getattr(self._session.local, "status", None)
            record_call(self.name, error_of_status(status or 500), str(exc))
            if status is not None and 400 <= status < 500 and status != 429:
                raise ProviderRejected(str(exc) or f"razorpay refused the request ({status})") from exc
            raise ProviderUnavailable(f"razorpay error ({status}): {exc}", answered=status is not None) from exc
        except requests.RequestException as exc:  # timeout, connection, unreadable body
            record_call(self.name, "unavailable", str(exc))
            raise ProviderUnavailable(f"razorpay unreachable or answered garbage: {exc}",
                                      sent=not _never_connected(exc)) from exc
        record_call(self.name)
        return body

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> Order:
        body = self._call(self._client.order.create,
                          {"amount": amount_paise, "currency": "INR", "receipt": receipt, "notes": notes})
        return Order(id=str(body["id"]), amount_paise=int(body["amount"]), currency=str(body.get("currency", "INR")),
                     receipt=str(body.get("receipt", receipt)))

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        return signature_matches(self._key_secret, f"{order_id}|{payment_id}".encode(), signature)

    def verify_webhook_signature(self, body: bytes, signature: str) -> bool:
        return signature_matches(self._webhook_secret, body, signature)

    def create_refund(self, *, payment_id: str, amount_paise: int, receipt: str, notes: dict[str, str]) -> Refund:
        body = self._call(self._client.payment.refund, payment_id,
                          {"amount": amount_paise, "receipt": receipt, "notes": notes})
        return _refund(body)

    def find_refund(self, *, payment_id: str, receipt: str) -> Refund | None:
        body = self._call(self._client.payment.fetch_multiple_refund, payment_id, {"count": 100})
        for item in body.get("items", []):
            if item.get("receipt") == receipt or as_dict(item.get("notes")).get("refund_id") == receipt:
                return _refund(item)
        return None

    def create_transfer(self, *, account: str, amount_paise: int, idempotency_key: str,
                        notes: dict[str, str]) -> Transfer:
        body = self._call(self._client.transfer.create,
                          {"account": account, "amount": amount_paise, "currency": "INR",
                           "notes": {**notes, "idempotency_key": idempotency_key}},
                          headers={IDEMPOTENCY_HEADER: idempotency_key})
        return _transfer(body)

    def find_transfer(self, *, idempotency_key: str, since: dt.datetime) -> Transfer | None:
        """Every transfer created since `since` (less the clock slack), page by page with
        `from`/`count`/`skip`, until a short page: not only the latest 100 (issue 13: 100 other
        payouts made while a job waited out its lease hid the first transfer, which was paid again).
        Pages are newest first, so transfers made during the search only push older ones to later
        pages (seen twice, never skipped)."""
        start = int(since.timestamp()) - CLOCK_SLACK_SECONDS
        for page in range(MAX_PAGES):
            body = self._call(self._client.transfer.all, {"from": start, "count": PAGE, "skip": page * PAGE})
            items = body.get("items") or []
            for item in items:
                if as_dict(item.get("notes")).get("idempotency_key") == idempotency_key:
                    return _transfer(item)
            if len(items) < PAGE:
                return None
        raise ProviderUnavailable(f"more than {MAX_PAGES * PAGE} transfers since {since.isoformat()}: "
                                  "the search was not completed", answered=True)

    def fetch_transfer(self, transfer_id: str) -> Transfer:
        return _transfer(self._call(self._client.transfer.fetch, transfer_id))


def _never_connected(exc: requests.RequestException) -> bool:
    """The request certainly did not reach the provider: the connection itself failed (refused,
    no route, connect timeout). A read timeout or a connection dropped mid-answer may have."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _refund(body: dict[str, Any]) -> Refund:
    return Refund(id=str(body["id"]), status=str(body.get("status", "pending")), amount_paise=int(body["amount"]))


def _transfer(body: dict[str, Any]) -> Transfer:
    error = as_dict(body.get("error"))
    reason = error.get("description") or error.get("reason")
    return Transfer(id=str(body["id"]), status=str(body.get("status", "created")), amount_paise=int(body["amount"]),
                    failure_reason=str(reason) if reason else None)


def _token(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:14]


class OutboxRazorpay:
    """Development stand-in: answers as Razorpay would and moves no money. It keeps no state:
    every id is derived from the receipt or idempotency key, so a repeated request returns the same
    object (the outbox is idempotent by construction), and what happened is the engine's own rows
    (payments, refunds, payouts), visible through the API."""

    name = "outbox"

    def __init__(self, *, key_id: str, key_secret: str, webhook_secret: str) -> None:
        self.key_id, self._key_secret, self._webhook_secret = key_id, key_secret, webhook_secret

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> Order:
        return Order(id=f"order_{_token('order', receipt)}", amount_paise=amount_paise, currency="INR", receipt=receipt)

    def sign_payment(self, order_id: str, payment_id: str) -> str:
        """What Razorpay's checkout hands the app; the outbox lets a developer complete a payment."""
        return hmac_sha256(self._key_secret, f"{order_id}|{payment_id}".encode())

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        return signature_matches(self._key_secret, f"{order_id}|{payment_id}".encode(), signature)

    def verify_webhook_signature(self, body: bytes, signature: str) -> bool:
        return signature_matches(self._webhook_secret, body, signature)

    def create_refund(self, *, payment_id: str, amount_paise: int, receipt: str, notes: dict[str, str]) -> Refund:
        return Refund(id=f"rfnd_{_token('refund', receipt)}", status="processed", amount_paise=amount_paise)

    def find_refund(self, *, payment_id: str, receipt: str) -> Refund | None:
        return None  # creation is idempotent by receipt: re-creating returns the same refund

    def create_transfer(self, *, account: str, amount_paise: int, idempotency_key: str,
                        notes: dict[str, str]) -> Transfer:
        return Transfer(id=f"trf_{_token('transfer', idempotency_key)}", status="processed", amount_paise=amount_paise)

    def find_transfer(self, *, idempotency_key: str, since: dt.datetime) -> Transfer | None:
        return None  # creation is idempotent by key

    def fetch_transfer(self, transfer_id: str) -> Transfer:
        raise ProviderRejected(f"the outbox keeps no transfers; {transfer_id} is final when created")
