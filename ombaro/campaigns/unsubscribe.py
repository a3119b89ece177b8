"""One-click unsubscribe (RFC 8058): a signed token per delivery, used without logging in.

The token carries the delivery id and the customer id, signed with HMAC-SHA-256 (truncated to
128 bits): changing either (another customer, another delivery) breaks the signature. Using it
turns the delivery's channel off in the customer's `communication_preferences` and stamps the
delivery's `unsubscribed_at`; a token works once (a second use, even after the customer opted in
again, changes nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, text
from sqlalchemy.orm import Session

_SIGNATURE_BYTES = 16


class InvalidToken(ValueError):
    """Not a token we issued (malformed, or the signature does not match)."""


class TokenUsed(Exception):
    """The link was used before."""


@dataclass(frozen=True)
class Unsubscribed:
    customer_id: uuid.UUID
    channel: str
    campaign_id: uuid.UUID | None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def sign(secret: bytes, delivery_id: int, customer_id: uuid.UUID) -> str:
    payload = struct.pack(">Q", delivery_id) + customer_id.bytes
    signature = hmac.new(secret, b"unsubscribe:" + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return f"{_b64(payload)}.{_b64(signature)}"


def verify(secret: bytes, token: str) -> tuple[int, uuid.UUID]:
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload, signature = _unb64(encoded_payload), _unb64(encoded_signature)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("this unsubscribe link is not valid") from exc
    if len(payload) != 24 or len(signature) != _SIGNATURE_BYTES:
        raise InvalidToken("this unsubscribe link is not valid")
    expected = hmac.new(secret, b"unsubscribe:" + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("this unsubscribe link is not valid")
    (delivery_id,) = struct.unpack(">Q", payload[:8])
    return delivery_id, uuid.UUID(bytes=payload[8:])


def link(base_url: str, secret: bytes, delivery_id: int, customer_id: uuid.UUID) -> str:
    return f"{base_url.rstrip('/')}/api/v1/unsubscribe/{sign(secret, delivery_id, customer_id)}"


def peek(session: Session, secret: bytes, token: str) -> tuple[str, bool]:
    """(channel, already used) for the confirmation page; InvalidToken when unknown."""
    delivery_id, customer_id = verify(secret, token)
    row = session.execute(text(
        "SELECT channel, unsubscribed_at IS NOT NULL FROM message_deliveries WHERE id = :d AND user_id = :u"),
        {"d": delivery_id, "u": customer_id}).one_or_none()
    if row is None:
        raise InvalidToken("this unsubscribe link is not valid")
    return str(row[0]), bool(row[1])


def use(session: Session, secret: bytes, token: str) -> Unsubscribed:
    """Turn the channel off for the customer, once. Runs in the caller's transaction."""
    delivery_id, customer_id = verify(secret, token)
    row = session.execute(text(
        "UPDATE message_deliveries SET unsubscribed_at = now(), updated_at = now() "
        "WHERE id = :d AND user_id = :u AND unsubscribed_at IS NULL RETURNING channel, campaign_id"),
        {"d": delivery_id, "u": customer_id}).one_or_none()
    if row is None:
        exists = session.execute(text("SELECT 1 FROM message_deliveries WHERE id = :d AND user_id = :u"),
                                 {"d": delivery_id, "u": customer_id}).first()
        if exists is None:
            raise InvalidToken("this unsubscribe link is not valid")
        raise TokenUsed("this unsubscribe link was already used")
    channel, campaign_id = str(row[0]), row[1]
    opt_out(session, customer_id, channel)
    return Unsubscribed(customer_id, channel, campaign_id)


def opt_out(session: Session | Connection, customer_id: uuid.UUID, channel: str) -> bool:
    """Set the channel to false in the customer's preferences; False when there is no customer."""
    # An UPDATE returns a CursorResult, which has the row count (Session.execute is typed as Result).
    done = cast(CursorResult[Any], session.execute(text(
        "UPDATE customers SET communication_preferences = "
        "coalesce(communication_preferences, '{}'::jsonb) || jsonb_build_object(CAST(:channel AS text), false), "
        "updated_at = now() WHERE id = :c"), {"channel": channel, "c": customer_id}))
    return bool(done.rowcount)
