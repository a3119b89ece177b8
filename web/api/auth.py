"""Registration, login, token refresh and logout."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ombaro import ratelimit
from ombaro.identity import accounts, tokens
from web.auth import authenticated, current_user, public
from web.extension import Ombaro, db_session
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


def _client() -> dict[str, str | None]:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string}


@blp.post("/register")
@public
@blp.arguments(RegisterSchema)
@blp.response(201, MeSchema)
@blp.alt_response(429, description="Too many attempts from this address or for this account; retry "
                                   "after `Retry-After` seconds.")
def register(body: dict[str, Any]) -> Any:
    """A customer creates their own account (and customer profile). Other roles are created by
    the roles allowed to, through /api/v1/users; sending `role` here is refused."""
    ombaro = Ombaro.get()
    ratelimit.hit(ombaro.redis, f"register:ip:{request.remote_addr}", limit=ombaro.settings.register_limit_per_address,
                  window=ombaro.settings.limit_window_seconds, what="registrations from this address")
    with ombaro.sessions() as session, session.begin():
        user = accounts.register_customer(session, **body)
        return {"id": user.id, "role": "customer", "name": body["name"], "email": user.email,
                "mobile": body["mobile"], "status": "active"}


@blp.post("/login")
@public
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(429, description="Too many attempts from this address or for this account; retry "
                                   "after `Retry-After` seconds.")
def login(body: dict[str, Any]) -> Any:
    """Email and password for an access token (short-lived) and a refresh token (rotating)."""
    ombaro = Ombaro.get()
    settings = ombaro.settings
    account = accounts.normalise_email(body["email"])
    ratelimit.hit(ombaro.redis, f"login:ip:{request.remote_addr}", limit=settings.login_limit_per_address,
                  window=settings.limit_window_seconds, what="login attempts from this address")
    ratelimit.hit(ombaro.redis, f"login:account:{account}", limit=settings.login_limit_per_account,
                  window=settings.limit_window_seconds, what="login attempts for this account")
    with ombaro.sessions() as session, session.begin():
        pair = accounts.authenticate(session, settings, email=account, password=body["password"], **_client())
    ratelimit.clear(ombaro.redis, f"login:account:{account}")  # a success forgives earlier typos
    return tokens.describe(pair)


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


@blp.post("/logout")
@authenticated
@blp.arguments(RefreshTokenSchema)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """Revoke the refresh token's family (this login on this device)."""
    with Ombaro.get().sessions() as session, session.begin():
        tokens.revoke_token_family(session, body["refresh_token"], reason="logout")


@blp.get("/me")
@authenticated
@blp.response(200, MeSchema)
def me() -> Any:
    """The caller's own account, read under their claims (row-level security)."""
    from sqlalchemy import select

    from ombaro.models.identity import User, UserProfile

    row = db_session().execute(
        select(UserProfile.id, UserProfile.role, UserProfile.name, UserProfile.mobile, UserProfile.status, User.email)
        .join(User, User.id == UserProfile.id).where(UserProfile.id == current_user().id)
    ).mappings().one()
    return dict(row)
