"""Providers behind small interfaces (docs/conventions.md): production uses the real SDKs, development the
outbox implementations, tests the real SDKs against a local server that speaks the provider's API.

The payments interface is what payments and settlements need from Razorpay and nothing more. Its
two errors are the only ones callers handle: `ProviderRejected` means the provider answered and
said no (definitive, with its reason); `ProviderUnavailable` means we do not know what happened
(timeout, connection lost, 429, 5xx), so the caller must retry with the same idempotency key or
ask the provider later, never assume either outcome.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ombaro import logs, metrics
from ombaro.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
REQUEST_ID_HEADER = "X-Request-ID"


class ProviderError(Exception):
    pass


class ProviderRejected(ProviderError):
    """The provider refused the request (a 4xx): retrying the same request will not help."""


class ProviderUnavailable(ProviderError):
    """The outcome is unknown: a timeout, a dropped connection, a 429 or a 5xx.

    `sent` is False when the request certainly never reached the provider (the connection could
    not be made): nothing can have happened. `answered` is True when the provider did answer
    (429, 5xx), so it is done with the request: what it made, if anything, can be looked up now.
    A timeout or a dropped connection is sent and unanswered: the request may still be in flight."""

    def __init__(self, message: str = "", *, sent: bool = True, answered: bool = False) -> None:
        super().__init__(message)
        self.sent, self.answered = sent, answered


@dataclass(frozen=True)
class Order:
    id: str
    amount_paise: int
    currency: str
    receipt: str


@dataclass(frozen=True)
class Transfer:
    id: str
    status: str  # Razorpay's: created, pending, processed, failed, reversed
    amount_paise: int
    failure_reason: str | None = None


@dataclass(frozen=True)
class Refund:
    id: str
    status: str  # pending, processed, failed
    amount_paise: int


class PaymentProvider(Protocol):
    name: str
    key_id: str

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> Order: ...

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool: ...

    def verify_webhook_signature(self, body: bytes, signature: str) -> bool: ...

    def create_refund(self, *, payment_id: str, amount_paise: int, receipt: str,
                      notes: dict[str, str]) -> Refund: ...

    def find_refund(self, *, payment_id: str, receipt: str) -> Refund | None: ...

    def create_transfer(self, *, account: str, amount_paise: int, idempotency_key: str,
                        notes: dict[str, str]) -> Transfer: ...

    def find_transfer(self, *, idempotency_key: str, since: dt.datetime) -> Transfer | None:
        """The transfer carrying our key among every transfer made since `since` (all pages);
        raises ProviderUnavailable when the search could not be completed."""
        ...

    def fetch_transfer(self, transfer_id: str) -> Transfer: ...


def payment_provider(settings: Settings) -> PaymentProvider:
    """The configured provider: `outbox` (development default) or `razorpay` (the SDK)."""
    from ombaro.providers.razorpay import OutboxRazorpay, RazorpayProvider

    if settings.payments_provider == "razorpay":
        return RazorpayProvider(key_id=settings.razorpay_key_id, key_secret=settings.razorpay_key_secret,
                                webhook_secret=settings.razorpay_webhook_secret,
                                base_url=settings.razorpay_base_url,
                                timeout_seconds=settings.razorpay_timeout_seconds)
    return OutboxRazorpay(key_id=settings.razorpay_key_id or "rzp_outbox",
                          key_secret=settings.razorpay_key_secret or "outbox-key-secret",
                          webhook_secret=settings.razorpay_webhook_secret)


def request_headers() -> dict[str, str]:
    """Sent with each provider request: the request id of the command behind it (docs/observability.md)."""
    rid = logs.request_id.get()
    return {REQUEST_ID_HEADER: rid} if rid else {}


def record_call(provider: str, error: str | None = None, detail: str = "") -> None:
    """Count one provider request (`error`: throttled, unavailable or rejected) and log it; the
    log line carries the request id, job id and kind of the work that made the call."""
    metrics.provider_call(provider, error)
    if error:
        log.info("provider %s call failed (%s): %s", provider, error, detail[:300])
    else:
        log.debug("provider %s call succeeded", provider)


def record_calls(provider: str, failures: Sequence[tuple[str, str]], calls: int) -> None:
    """`calls` provider requests, of which `failures` (error, detail) failed: each failure logged as
    `record_call` does, the counts sent to the metrics store in one round trip."""
    for error, detail in failures:
        log.info("provider %s call failed (%s): %s", provider, error, detail[:300])
    metrics.provider_calls(provider, calls, Counter(error for error, _ in failures))


def error_of_status(status: int) -> str:
    return "throttled" if status == 429 else "unavailable" if status >= 500 else "rejected"


def map_in_context(pool: Executor, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """`pool.map` with each call in a copy of the caller's context: the request id and job id reach
    the pool's threads (context variables do not cross threads by themselves)."""
    calls = [(contextvars.copy_context(), item) for item in items]
    return pool.map(lambda call: call[0].run(function, call[1]), calls)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
