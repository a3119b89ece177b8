"""Registration, login, token refresh, logout and password change."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import redis
from flask import request
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import ServiceUnavailable

from ombaro import ratelimit
from ombaro.identity import accounts, queries, tokens
from web.auth import authenticated, current_user, current_user_id, public
from web.errors import RETRY_AFTER_SECONDS
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import GENDERS, MOBILE, PASSWORD

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens")


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    mobile = fields.String(required=True, validate=MOBILE)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    gender = fields.String(validate=validate.OneOf(GENDERS))


class LoginSchema(Schema):
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class RefreshTokenSchema(Schema):
    refresh_token = fields.String(required=True, load_only=True, validate=validate.Length(min=20, max=200))


class TokenSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer(metadata={"description": "seconds the access token lives"})


class MeSchema(Schema):
    id = fields.UUID()
    role = fields.String()
    name = fields.String()
    email = fields.String()
    mobile = fields.String()
    status = fields.String()


# Past this many times the per-(account, address) limit, failures from all addresses together stop
# addresses the account never signed in from; a known address (30 days) keeps its own limit only.
ACCOUNT_WIDE_FACTOR = 10
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600


def _digest(value: str) -> str:
    """Rate-limit keys hold no email or address, not even as a plain hash one could look up in a
    list of emails: an HMAC under the token secret (Redis is not where personal data lives)."""
    key = Ombaro.get().settings.jwt_secret.encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


@contextmanager
def limiter_available() -> Iterator[None]:
    """Without Redis the limits cannot be counted: login and registration fail closed (503) rather
    than let guessing run unlimited."""
    try:
        yield
    except redis.RedisError as exc:
        raise ServiceUnavailable("sign-in is unavailable for a moment; try again shortly",
                                 retry_after=RETRY_AFTER_SECONDS) from exc


class _Client(TypedDict):
    """Where a login comes from, as its session records it."""

    ip: str | None
    user_agent: str


def _client() -> _Client:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string}


class RegisteredSchema(Schema):
    status = fields.String(metadata={"description": "always `received`"})
    detail = fields.String()


REGISTERED = {"status": "received",
              "detail": "If this email and mobile number are not in use, the account is created: sign in with them."}


@blp.post("/register")
@public
@blp.arguments(RegisterSchema)
@blp.response(202, RegisteredSchema)
@blp.alt_response(429, description="Too many attempts from this address or for this account; retry "
                                   "after `Retry-After` seconds.")
def register(body: dict[str, Any]) -> Any:
    """A customer creates their own account (and customer profile). The answer is the same, and
    takes as long, whether or not the email or mobile is already in use (no account oracle): sign
    in to use the account. Other roles are created through /api/v1/users; sending `role` is refused."""
    ombaro = Ombaro.get()
    with limiter_available():
        ratelimit.hit(ombaro.redis, f"register:ip:{_digest(request.remote_addr or 'unknown')}",
                      limit=ombaro.settings.register_limit_per_address, window=ombaro.settings.limit_window_seconds,
                      what="registrations from this address")
    with ombaro.sessions() as session, session.begin():
        accounts.register(session, **body)
    return REGISTERED


@blp.post("/login")
@public
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(429, description="Too many attempts from this address or for this account; retry "
                                   "after `Retry-After` seconds.")
def login(body: dict[str, Any]) -> Any:
    """Email and password for an access token (short-lived) and a refresh token (rotating).

    Every failure answers the same 401 (docs/security.md). Failures are limited per
    account *and* client address: ten from one address stop that address for the window, not the
    owner elsewhere; past ten times that from all addresses together, only addresses the account
    signed in from before may keep trying. Besides, attempts are limited per address."""
    ombaro = Ombaro.get()
    settings = ombaro.settings
    account = accounts.normalise_email(body["email"])
    address = request.remote_addr or "unknown"
    who, where = _digest(account), _digest(address)
    pair, wide, known = f"login:account:{who}:{where}", f"login:accountwide:{who}", f"login:known:{who}"
    window = settings.limit_window_seconds
    with limiter_available():
        ratelimit.hit(ombaro.redis, f"login:ip:{where}", limit=settings.login_limit_per_address, window=window,
                      what="login attempts from this address")
        ratelimit.check(ombaro.redis, pair, limit=settings.login_limit_per_account,
                        what="failed logins for this account from this address")
        if not ratelimit.is_member(ombaro.redis, known, where):
            ratelimit.check(ombaro.redis, wide, limit=settings.login_limit_per_account * ACCOUNT_WIDE_FACTOR,
                            what="failed logins for this account")
    try:
        with ombaro.sessions() as session, session.begin():
            issued = accounts.authenticate(session, settings, email=account, password=body["password"], **_client())
    except accounts.InvalidCredentials:
        with limiter_available():
            ratelimit.count(ombaro.redis, pair, window=window)
            ratelimit.count(ombaro.redis, wide, window=window)
        raise
    with limiter_available():
        ratelimit.clear(ombaro.redis, pair)  # a success forgives earlier typos from this address
        ratelimit.remember(ombaro.redis, known, where, seconds=KNOWN_ADDRESS_SECONDS)
    return tokens.describe(issued)


@blp.post("/refresh")
@public
@blp.arguments(RefreshTokenSchema)
@blp.response(200, TokenSchema)
def refresh(body: dict[str, Any]) -> Any:
    """Spend a refresh token for a new pair. A token used twice revokes its whole family."""
    ombaro = Ombaro.get()
    with ombaro.sessions() as session:
        try:
            with session.begin():
                pair = accounts.refresh(session, ombaro.settings, refresh_token=body["refresh_token"], **_client())
        except (tokens.TokenError, accounts.AccountDisabled):
            with session.begin():  # the revocation of a reused family must stick
                tokens.revoke_token_family(session, body["refresh_token"], reason="reuse or inactive account")
            raise
    return tokens.describe(pair)


class LogoutSchema(Schema):
    refresh_token = fields.String(load_only=True, validate=validate.Length(min=20, max=200),
                                  metadata={"description": "optional: the login of the access token ends anyway"})


@blp.post("/logout")
@authenticated
@blp.arguments(LogoutSchema, required=False)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """End this login: its refresh-token family is revoked, and with it every access token of the
    login, including the one that made this call (refused from the next request on)."""
    user = current_user()
    with Ombaro.get().sessions() as session, session.begin():
        if body.get("refresh_token"):
            tokens.revoke_token_family(session, body["refresh_token"], reason="logout", user_id=user.id)
        if user.session_id is not None:
            tokens.revoke_family(session, user.session_id, reason="logout")


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, load_only=True, validate=PASSWORD)


@blp.post("/password")
@authenticated
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokenSchema)
def change_password(body: dict[str, Any]) -> Any:
    """Change the caller's password: every login of the account ends at once (access tokens
    included); the answer is a new pair for this device."""
    ombaro = Ombaro.get()
    # A stolen access token must not become a way to guess the password: counted per account.
    with limiter_available():
        ratelimit.hit(ombaro.redis, f"password:account:{current_user().id}",
                      limit=ombaro.settings.login_limit_per_account, window=ombaro.settings.limit_window_seconds,
                      what="password changes for this account")
    with ombaro.sessions() as session, session.begin():
        pair = accounts.change_password(session, ombaro.settings, user_id=current_user_id(), **body, **_client())
    return tokens.describe(pair)


@blp.get("/me")
@authenticated
@blp.response(200, MeSchema)
def me() -> Any:
    """The caller's own account, read under their claims (row-level security)."""
    return queries.own_account(db_session(), current_user_id())
