"""Who is calling and what they may do: the one place the current user is resolved, and the
decorators with which every endpoint declares, in one line, the permission it needs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from ombaro.access import permissions
from ombaro.identity import accounts, tokens
from web.extension import Ombaro

F = TypeVar("F", bound=Callable[..., Any])


class NotAuthenticated(Exception):
    """401: no valid access token where one is needed."""


class PermissionDenied(Exception):
    """403: authenticated, but the role may not do this."""


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID | None
    role: str | None
    session_id: uuid.UUID | None = None  # the login (refresh-token family) of the access token

    @property
    def is_authenticated(self) -> bool:
        return self.id is not None

    @property
    def idempotency_scope(self) -> str:
        # Idempotency keys are unique per caller (IETF draft): one client's key never matches another's.
        return str(self.id) if self.id else "anonymous"

    def claims(self) -> dict[str, str] | None:
        """What row-level security sees (docs/access.md); None for anonymous: no rows at all."""
        return {"sub": str(self.id), "role": str(self.role)} if self.id else None


ANONYMOUS = CurrentUser(id=None, role=None)


def current_user_id() -> uuid.UUID:
    """The caller's id where an endpoint acts as its signed-in caller (its permission keeps
    anonymous callers out before the handler runs)."""
    user_id = current_user().id
    if user_id is None:
        raise NotAuthenticated("this endpoint needs an access token")
    return user_id


@dataclass(frozen=True)
class Permission:
    module: str | None  # None: any authenticated caller
    action: str | None
    public: bool = False

    def __str__(self) -> str:
        if self.public:
            return "public"
        return f"{self.module}:{self.action}" if self.module else "authenticated"


PUBLIC = Permission(None, None, public=True)
AUTHENTICATED = Permission(None, None)


def current_user() -> CurrentUser:
    user: CurrentUser = g.get("user", ANONYMOUS)
    return user


def resolve_user() -> None:
    """before_request: verify the bearer token (signature, expiry, issuer, audience) and look the
    account and its login up, so a suspended or signed-out user is refused at once and a role
    change applies at once."""
    g.user = ANONYMOUS
    header = request.headers.get("Authorization")
    if header is None or request.routing_exception is not None:
        return  # no route (404) or not this method (405, with Allow): the same answer whoever asks
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <access token>'")
    g.user = user_from_token(token.strip())


def user_from_token(token: str) -> CurrentUser:
    """The active account an access token speaks for (the API's bearer header, the console's cookie)."""
    ombaro = Ombaro.get()
    try:
        claims = tokens.verify_access_token(ombaro.settings, token)
    except tokens.TokenError as exc:
        raise NotAuthenticated("the access token is invalid or expired") from exc
    # One statement outside a transaction (no BEGIN and ROLLBACK round trips): a consistent read of
    # the account's status and its login.
    with ombaro.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        principal = accounts.principal_of(connection, claims.user_id, claims.session_id)
    if principal is None:
        raise NotAuthenticated("the access token's account no longer exists")
    if principal.status != "active":
        raise PermissionDenied(f"this account is {principal.status}")
    if not principal.session_live:  # signed out, suspended, password changed, or a copied refresh token
        raise NotAuthenticated("this session has ended; sign in again")
    return CurrentUser(principal.user_id, principal.role, claims.session_id)


def may(module: str, action: str, user: CurrentUser | None = None) -> bool:
    user = user or current_user()
    if not user.is_authenticated:
        return False
    with Ombaro.get().sessions() as session:
        grants = permissions.GRANTS_CACHE.get(session)
    return permissions.allowed_by(grants, user.role, module, action)


def _declare(permission: Permission, check: Callable[[], None] | None) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        if check is None:
            view.permission = permission  # type: ignore[attr-defined]
            return view

        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check()
            return view(*args, **kwargs)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def requires(module: str, action: str) -> Callable[[F], F]:
    """The caller's role must hold `action` on `module`. Place it right under the route decorator
    so it runs before the body is parsed: a caller without the permission learns nothing more."""
    if module not in permissions.MODULES or action not in permissions.ACTIONS:
        raise ValueError(f"unknown permission {module}:{action}")

    def check() -> None:
        user = current_user()
        if not user.is_authenticated:
            raise NotAuthenticated("this endpoint needs an access token")
        if not may(module, action, user):
            raise PermissionDenied(f"a {user.role} may not {action} {module}")

    return _declare(Permission(module, action), check)


def authenticated(view: F) -> F:
    """Any logged-in caller (e.g. their own profile); row-level security narrows the rows."""
    def check() -> None:
        if not current_user().is_authenticated:
            raise NotAuthenticated("this endpoint needs an access token")

    return _declare(AUTHENTICATED, check)(view)


def public(view: F) -> F:
    """Open to anyone (login, registration, health)."""
    return _declare(PUBLIC, None)(view)


def permission_of(view: Callable[..., Any]) -> Permission | None:
    while view is not None:
        declared = getattr(view, "permission", None)
        if isinstance(declared, Permission):
            return declared
        view = getattr(view, "__wrapped__", None)  # type: ignore[assignment]
    return None
