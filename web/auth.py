"""Who is calling and what they may do: the one place the current user is resolved, and the
decorators with which every endpoint declares, in one line, the permission it needs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app

from ombaro.access import permissions
from ombaro.identity import accounts, tokens
from web.extension import Ombaro, request_globals, this_request

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
    user: CurrentUser = request_globals().get("user", ANONYMOUS)  # g itself: one proxy look-up less
    return user


def resolve_user() -> None:
    """Run before every handler (web.before_request): verify the bearer token (signature, expiry,
    issuer, audience) and look the account and its login up (or take this process's look-up of
    the last PRINCIPAL_TTL_SECONDS), so a suspended or signed-out user is refused and a role
    change applies within that bound; at once for the console's calls (FRESH_PRINCIPAL)."""
    here, req = request_globals(), this_request()
    here.user = ANONYMOUS
    environ = req.environ
    header = environ.get("HTTP_AUTHORIZATION")  # the Authorization header (req.headers' own key for it)
    if header is None or req.routing_exception is not None:
        return  # no route (404) or not this method (405, with Allow): the same answer whoever asks
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("the Authorization header must be 'Bearer <access token>'")
    verified = environ.get(VERIFIED_CLAIMS)
    claims = verified[1] if verified is not None and verified[0] == token else None
    here.user = user_from_token(token, fresh=bool(environ.get(FRESH_PRINCIPAL)), claims=claims)


# How long a process trusts an account look-up it made for a token: a suspension, a sign-out or a
# role change made in another process (or straight in the database) applies within this bound;
# made through this process's API or console, at once (forget_changed_principals).
PRINCIPAL_TTL_SECONDS = 1.0
# A WSGI environ key (no HTTP client can set one: headers arrive as HTTP_*) by which the console's
# in-process API calls ask for a look-up of their own, never the cache's.
FRESH_PRINCIPAL = "ombaro.fresh_principal"
# A WSGI environ key by which the console hands its in-process API calls the claims of the token it
# already verified for the page, as (token, claims): the call takes them for that very token only,
# checks their expiry, and still looks the account and its login up.
VERIFIED_CLAIMS = "ombaro.verified_claims"
PRINCIPAL_CACHE_LIMIT = 10_000  # tokens remembered per process; beyond, the cache starts over
# Requests that may end a login or change an account (logout, refresh with a reused token, password,
# status, role): after any of them, in any outcome, this process forgets every cached principal.
IDENTITY_BLUEPRINTS = frozenset({"auth", "users", "console"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PrincipalCache:
    """Access token -> the caller it spoke for, for PRINCIPAL_TTL_SECONDS (and never past the
    token's expiry). Saves the token check and the account look-up (a pooled connection and a
    query) on the requests that follow within that second (docs/security.md)."""

    def __init__(self, ttl: float = PRINCIPAL_TTL_SECONDS, limit: int = PRINCIPAL_CACHE_LIMIT) -> None:
        self.ttl = ttl
        self.limit = limit
        # token -> (user, monotonic deadline, wall-clock expiry of the token); plain dict operations
        # are atomic under the GIL, and a race at worst looks the account up once more.
        self._entries: dict[str, tuple[CurrentUser, float, float]] = {}

    def get(self, token: str) -> CurrentUser | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        user, deadline, expires = entry
        if time.monotonic() >= deadline or time.time() >= expires:
            self._entries.pop(token, None)
            return None
        return user

    def put(self, token: str, user: CurrentUser, expires: float) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[token] = (user, time.monotonic() + self.ttl, expires)

    def clear(self) -> None:
        self._entries.clear()


def principals() -> PrincipalCache:
    cache: PrincipalCache = current_app.extensions["ombaro.principals"]
    return cache


def user_from_token(token: str, *, fresh: bool = False, claims: tokens.Claims | None = None) -> CurrentUser:
    """The active account an access token speaks for (the API's bearer header, the console's cookie);
    `fresh`: looked up now, not taken from the principal cache (which the look-up then refreshes);
    `claims`: the token's claims as this process verified them already (only the expiry is checked)."""
    cache = principals()
    cached = None if fresh else cache.get(token)
    if cached is not None:
        return cached
    ombaro = Ombaro.get()
    if claims is None:
        try:
            claims = tokens.verify_access_token(ombaro.settings, token)
        except tokens.TokenError as exc:
            raise NotAuthenticated("the access token is invalid or expired") from exc
    elif claims.expired():  # as verify_access_token judges `exp`
        raise NotAuthenticated("the access token is invalid or expired")
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
    user = CurrentUser(principal.user_id, principal.role, claims.session_id)
    cache.put(token, user, claims.expires_at.timestamp())
    return user


def forget_changed_principals(_exc: BaseException | None = None) -> None:
    """teardown_request: a state-changing request to the accounts' endpoints (whatever its answer:
    a replayed refresh token is refused and still revokes its login) empties this process's cache."""
    req = this_request()
    if req.method not in SAFE_METHODS and req.blueprint in IDENTITY_BLUEPRINTS:
        principals().clear()


def init_app(app: Flask) -> None:
    """The principal cache of this app, and the hook that empties it (resolve_user, which fills it,
    runs from web.before_request)."""
    app.extensions["ombaro.principals"] = PrincipalCache()
    app.teardown_request(forget_changed_principals)


def may(module: str, action: str, user: CurrentUser | None = None) -> bool:
    user = user or current_user()
    if not user.is_authenticated:
        return False
    grants = permissions.GRANTS_CACHE.fresh()
    if grants is None:  # read again (every few seconds): only then is a session needed
        with Ombaro.get().sessions() as session:
            grants = permissions.GRANTS_CACHE.get(session)
    return permissions.allowed_in(grants, user.role, module, action)


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
