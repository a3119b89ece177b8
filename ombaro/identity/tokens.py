"""Access tokens (short-lived signed JWTs) and refresh tokens (opaque, stored hashed, rotated).

A refresh token is used once: using it returns a new one of the same family. Presenting a token
that was already used means it was copied; the whole family is revoked and the holder must log in.

A family is one login (one device). Every access token the API issues names its family (`sid`),
and every request checks that the family is still live (accounts.principal_of, in the query that
already reads the account's status): logout, suspension, a password change or a detected reuse
revoke the family, and its access tokens stop working at once, not when they expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, cast

import jwt
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ombaro.config import Settings
from ombaro.models.access import RefreshToken

ALGORITHM = "HS256"
# The clock skew tolerated on `exp`, for verify_access_token and Claims.expired alike (none today).
LEEWAY = dt.timedelta(0)


class TokenError(Exception):
    """The token is missing, malformed, expired, tampered with, or revoked."""


@dataclass(frozen=True)
class Claims:
    user_id: uuid.UUID
    role: str
    expires_at: dt.datetime
    session_id: uuid.UUID | None = None  # the refresh-token family (login) the token belongs to

    def expired(self, now: dt.datetime | None = None) -> bool:
        """`exp` judged as verify_access_token judges it (PyJWT: expired once exp <= now - leeway),
        for claims this process verified earlier."""
        return self.expires_at <= (now or dt.datetime.now(dt.UTC)) - LEEWAY


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def issue_access_token(settings: Settings, user_id: uuid.UUID, role: str, *, session_id: uuid.UUID | None = None,
                       now: dt.datetime | None = None) -> str:
    """A signed token for `user_id`. Logins always pass `session_id` (their refresh-token family);
    a token without one (made by tools and tests, never by the API) ends only with the account."""
    issued = now or dt.datetime.now(dt.UTC)
    payload: dict[str, Any] = {
        "sub": str(user_id), "role": role, "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
        "iat": issued, "nbf": issued, "exp": issued + dt.timedelta(seconds=settings.access_token_seconds),
        "jti": secrets.token_hex(8)}
    if session_id is not None:
        payload["sid"] = str(session_id)
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM)


def verify_access_token(settings: Settings, token: str) -> Claims:
    """Signature, algorithm (never `none`), expiry, issuer and audience, every time."""
    try:
        payload = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], audience=settings.jwt_audience,
                             issuer=settings.jwt_issuer, leeway=LEEWAY,
                             options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        return Claims(uuid.UUID(payload["sub"]), str(payload["role"]),
                      dt.datetime.fromtimestamp(payload["exp"], dt.UTC),
                      uuid.UUID(payload["sid"]) if "sid" in payload else None)
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise TokenError(f"invalid access token: {exc}") from exc


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_refresh_token(session: Session, settings: Settings, user_id: uuid.UUID, *,
                        family_id: uuid.UUID | None = None, ip: str | None = None,
                        user_agent: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    session.add(RefreshToken(
        user_id=user_id, family_id=family_id or uuid.uuid4(), token_hash=_digest(token),
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=settings.refresh_token_days),
        ip=ip, user_agent=(user_agent or "")[:300] or None))
    session.flush()
    return token


def rotate_refresh_token(session: Session, settings: Settings, token: str, *, ip: str | None = None,
                         user_agent: str | None = None) -> tuple[uuid.UUID, str, uuid.UUID]:
    """Spend `token` and return (user id, its successor, the family). Reuse revokes the whole family."""
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == _digest(token)).with_for_update()
    ).one_or_none()
    now = dt.datetime.now(dt.UTC)
    if row is None:
        raise TokenError("unknown refresh token")
    if row.used_at is not None or row.revoked_at is not None:
        revoke_family(session, row.family_id, reason="reuse detected" if row.used_at else "revoked token presented")
        raise TokenError("refresh token already used: every session of this login is revoked")
    if row.expires_at <= now:
        raise TokenError("refresh token expired")
    row.used_at = now
    successor = issue_refresh_token(session, settings, row.user_id, family_id=row.family_id, ip=ip,
                                    user_agent=user_agent)
    return row.user_id, successor, row.family_id


def revoke_family(session: Session, family_id: uuid.UUID, *, reason: str) -> int:
    # An UPDATE returns a CursorResult, which has the row count (Session.execute is typed as Result).
    result = cast(CursorResult[Any], session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC), revoked_reason=reason)))
    return result.rowcount or 0


def revoke_token_family(session: Session, token: str, *, reason: str = "logout",
                        user_id: uuid.UUID | None = None) -> bool:
    """Revoke the family of `token` (only if it belongs to `user_id`, when given)."""
    query = select(RefreshToken.family_id).where(RefreshToken.token_hash == _digest(token))
    if user_id is not None:
        query = query.where(RefreshToken.user_id == user_id)
    family = session.scalar(query)
    if family is None:
        return False
    revoke_family(session, family, reason=reason)
    return True


def revoke_user(session: Session, user_id: uuid.UUID, *, reason: str) -> int:
    # An UPDATE returns a CursorResult, which has the row count (Session.execute is typed as Result).
    result = cast(CursorResult[Any], session.execute(
        update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC), revoked_reason=reason)))
    return result.rowcount or 0


def describe(pair: TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "token_type": pair.token_type, "expires_in": pair.expires_in}
