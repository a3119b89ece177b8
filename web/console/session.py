"""Signing in and out, the signed-in user, CSRF, and the in-process API call every page makes."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, Response, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as WerkzeugResponse

from ombaro.access import permissions
from ombaro.access.roles import STAFF_ROLES
from ombaro.config import Settings
from ombaro.identity import tokens
from web.auth import CurrentUser, NotAuthenticated, PermissionDenied, user_from_token
from web.console import api_client, bp, charts
from web.console.api_client import Answer
from web.extension import Ombaro

F = TypeVar("F", bound=Callable[..., Any])

# Sections in the order of the navigation: (endpoint, label, module, action the page needs).
# Payroll needs `export`: every staff role reads payroll (its own payslip), only HR and accounts
# act on the month's runs.
SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("console.dashboard", "Dashboard", "reports", "read"),
    ("console.jobs", "Jobs", "jobs", "read"),
    ("console.schedules", "Schedules", "schedules", "read"),
    ("console.settlements", "Settlements", "settlements", "read"),
    ("console.payroll", "Payroll", "payroll", "export"),
    ("console.campaigns", "Campaigns", "campaigns", "read"),
    ("console.dispatch", "Dispatch", "dispatch", "read"),
)


def session_secret(jwt_secret: str) -> bytes:
    """Flask's session cookie key, derived from the token secret so there is one secret to manage."""
    return hmac.new(jwt_secret.encode(), b"ombaro console session", hashlib.sha256).digest()


# ---- the session cookie: sealed, not just signed ---------------------------------------------------

COOKIE_CONTEXT = b"ombaro console cookie v1"


class SealedCookie:
    """Flask's session serializer, with AES-256-GCM instead of a signature: the cookie carries the
    user's access and refresh tokens, which a signed cookie shows to anyone who reads it (a proxy
    log, a shared machine). Sealed, it is opaque and tamper-evident; its age is sealed inside."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hmac.new(secret, COOKIE_CONTEXT, hashlib.sha256).digest())
        self._json = TaggedJSONSerializer()
        # Cookies opened before, by their exact text: a browser sends the same cookie page after page
        # (it changes only when the session does), and opening it (base64, the cipher, the tagged JSON)
        # costs 20 us a page. Only sessions of immutable values (strings, numbers): the caller gets a
        # copy of the dict, and a list in it (flashed messages) would be shared.
        self._opened: dict[str, tuple[int, dict[str, Any]]] = {}

    def dumps(self, value: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        plaintext = self._json.dumps({"at": int(time.time()), "data": value}).encode()
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plaintext, COOKIE_CONTEXT)).decode()

    def loads(self, cookie: str, max_age: int | None = None) -> dict[str, Any]:
        opened = self._opened.get(cookie)
        if opened is None:
            opened = self._open(cookie)
            if all(isinstance(value, str | int | float | None) for value in opened[1].values()):
                if len(self._opened) >= 4096:  # bounded: a session's cookie changes with it
                    self._opened.clear()
                self._opened[cookie] = opened
        at, data = opened
        if max_age is not None and time.time() - at > max_age:
            raise BadSignature("the console cookie is too old")
        return dict(data)

    def _open(self, cookie: str) -> tuple[int, dict[str, Any]]:
        try:
            raw = base64.urlsafe_b64decode(cookie.encode())
            sealed = self._json.loads(self._aead.decrypt(raw[:12], raw[12:], COOKIE_CONTEXT).decode())
        except (InvalidTag, ValueError, TypeError) as exc:
            raise BadSignature("the console cookie does not open") from exc
        return sealed["at"], dict(sealed["data"])


class SealedCookieSessionInterface(SecureCookieSessionInterface):
    def get_signing_serializer(self, app: Flask) -> SealedCookie | None:  # type: ignore[override]
        if not app.secret_key:
            return None
        key = app.secret_key if isinstance(app.secret_key, bytes) else str(app.secret_key).encode()
        return _sealer(key)


@functools.lru_cache(maxsize=8)
def _sealer(key: bytes) -> SealedCookie:
    """One sealer a key, not one a request (the cipher's key schedule and the HMAC once)."""
    return SealedCookie(key)


@bp.record_once
def _seal_the_cookie(state: BlueprintSetupState) -> None:
    cast(Flask, state.app).session_interface = SealedCookieSessionInterface()  # the console runs on Flask


# ---- the in-process API call ----------------------------------------------------------------


def api(method: str, path: str, *, json: Any = None, query: Mapping[str, Any] | None = None,
        token: str | None = None) -> Answer:
    """Call /api/v1 in-process as the signed-in user: same validation, permissions, row-level
    security and audit as any other client (`api_client.call` runs the app's whole WSGI stack). A
    fresh app context keeps the call's `g` (its user, its database session) apart from the page's.
    `token=""` calls without a bearer token.

    The first call of a page whose signed-in user is not looked up yet (`load_user`) hands the page
    the principal the API looked up for it (`_adopt`), or refuses the page there."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    bearer = session.get("access") if token is None else token  # "": no Authorization header at all
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if rid := g.get("request_id"):  # the page's request id follows its API calls into the jobs they submit
        headers["X-Request-ID"] = rid
    if agent := request.user_agent.string:  # the staff member's browser, as the API's audit records it
        headers["User-Agent"] = agent
    # As if the page's own client sent it, to the host and root the page was served from.
    base_url, remote_addr = request.root_url, request.remote_addr or "127.0.0.1"
    # The page checked its token's signature already (`load_user`): the call takes those claims for
    # that token (a rotated one is verified afresh) and looks the account up as any call does.
    verified = g.get("console_verified") if token is None else None
    with app.app_context():
        answer = api_client.call(app, method, path, json=json, query=query, headers=headers,
                                 base_url=base_url, remote_addr=remote_addr, verified=verified)
        principal: CurrentUser | None = g.get("user")  # whom the API found the bearer to be, just now
    if token is None and g.get("console_pending"):
        _adopt(principal)
        if answer.status == 401 and method == "GET" and session.get("access") not in (None, bearer):
            # The access token expired in between and was rotated: the read is made again with the new one.
            return api(method, path, json=json, query=query)
    return answer


def download(answer: Answer) -> Response:
    """Hand a file the API produced to the browser as it came (a problem becomes a 4xx page)."""
    if not answer.ok:
        abort(answer.status, answer.message)
    return Response(answer.data, mimetype=answer.content_type.split(";")[0],
                    headers={"Content-Disposition": answer.disposition or "attachment"})


def flash_answer(answer: Answer, success: str) -> bool:
    if answer.ok:
        flash(success, "ok")
    else:
        flash(answer.message, "error")
    return answer.ok


# ---- who is signed in ------------------------------------------------------------------------


def console_user() -> CurrentUser | None:
    """The signed-in user as the database says now (looked up on first use in this request)."""
    if g.get("console_pending"):
        g.console_pending = False
        _look_up()
    user: CurrentUser | None = g.get("console_user")
    return user


@bp.before_request
def load_user() -> ResponseReturnValue | None:
    g.console_user = None
    g.console_pending = False
    g.console_page = None
    if request.method == "POST":  # the login form too: login CSRF signs a victim in as the attacker
        try:
            check_csrf()
        except PermissionDenied:
            if request.endpoint != "console.login":
                raise
            flash("The sign-in form expired or did not come from the console; please sign in again.", "error")
            return render_template("console/login.html", next=""), 403
    if "access" not in session:
        return None
    if request.method == "GET":
        try:
            claims = _verified(Ombaro.get().settings, session["access"])
        except tokens.TokenError:
            claims = None  # not a token of ours
        if claims is not None and claims.expires_at > dt.datetime.now(dt.UTC):  # expired: rotated below
            # A page reads through the API, which looks the account and its login up anyway (the
            # request's principal): the page takes that one (`api`) instead of a look-up of its own.
            # Until then the user counts as not looked up; whatever asks first looks them up.
            g.console_claims = claims
            g.console_verified = (session["access"], claims)
            g.console_pending = True
            return None
    _look_up()
    return None


# Claims of access tokens already verified, keyed by the whole token and what verifying it depends on.
_VERIFIED: dict[tuple[str, str, str, str], tokens.Claims] = {}


def _verified(settings: Settings, token: str) -> tokens.Claims:
    """An access token's claims, its signature checked once a process, not once a page: a token is
    immutable (the caller checks the expiry every time)."""
    key = (settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience, token)
    claims = _VERIFIED.get(key)
    if claims is None:
        claims = tokens.verify_access_token(settings, token)
        if len(_VERIFIED) >= 4096:  # bounded: tokens live 15 minutes
            _VERIFIED.clear()
        _VERIFIED[key] = claims
    return claims


def _look_up() -> None:
    """The signed-in user from the database: a suspended account, or a login that has ended, is
    signed out at once; an expired access token (15 minutes) is rotated with the refresh token once."""
    try:
        g.console_user = user_from_token(session["access"], fresh=True)
    except PermissionDenied:  # suspended: signed out at once
        session.clear()
    except NotAuthenticated:  # expired (15 minutes): rotate the refresh token once
        # Without the expired token as bearer: the API refuses a request carrying an invalid one.
        answer = api("POST", "/api/v1/auth/refresh", json={"refresh_token": session.get("refresh", "")}, token="")
        if not answer.ok:
            session.clear()
            return
        session["access"], session["refresh"] = answer.body["access_token"], answer.body["refresh_token"]
        g.console_user = user_from_token(session["access"], fresh=True)


class PageRefused(Exception):
    """The signed-in user, once looked up, may not see the page being drawn: signed out, or no
    longer of a role that may (`page` answers with the login page or the 403 page)."""


def _adopt(principal: CurrentUser | None) -> None:
    """Take the principal the page's first API call looked up as the page's user; where the API
    found none (a suspended account, an ended login, an expired token), look up as before."""
    g.console_pending = False
    claims = g.get("console_claims")
    if principal is not None and principal.is_authenticated and claims is not None and principal.id == claims.user_id \
            and principal.session_id == claims.session_id:
        g.console_user = principal
    else:
        _look_up()
    if (needs := g.get("console_page")) is not None and not allowed(*needs):
        raise PageRefused()


def check_csrf() -> None:
    """Cookies are SameSite=Strict; on top, every form carries the session's token and a
    cross-origin Origin header is refused."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise PermissionDenied("cross-origin form post refused")
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(expected, request.form.get("csrf", "")):
        raise PermissionDenied("the form has expired or did not come from the console; reload the page")


@bp.app_template_global("csrf_token")  # a global, not context: macros.html is imported without context
def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def allowed(module: str, action: str = "read") -> bool:
    """What `web.auth.may` answers for the signed-in user, asked of the permission matrix (cached for
    a few seconds, `permissions.GRANTS_CACHE`) once a request: the navigation, a page's buttons and
    a list's rows ask it dozens of times."""
    user = console_user()
    if user is None or not user.is_authenticated:
        return False
    return _role_may(user.role, module, action)


Grants = Mapping[str, Mapping[str, frozenset[str]]]


def _grants() -> Grants:
    """The matrix this request reads (once a request: one matrix for the whole page); the answers
    asked of it are kept beside it by `permissions.allowed_in`, as the API's `web.auth.may` keeps
    them."""
    grants: Grants | None = g.get("console_grants")
    if grants is None:
        grants = permissions.GRANTS_CACHE.fresh()
        if grants is None:  # read again (every few seconds): only then is a session needed
            with Ombaro.get().sessions() as db:
                grants = permissions.GRANTS_CACHE.get(db)
        g.console_grants = grants
    return grants


def _role_may(role: str | None, module: str, action: str) -> bool:
    return permissions.allowed_in(_grants(), role, module, action)


def page(module: str, action: str = "read") -> Callable[[F], F]:
    """A console page: signed-in staff whose role holds `module:action`; anyone else is sent to
    sign in or shown a 403 page (the API behind the page would refuse them too).

    A page read (GET) whose access token is sound starts without a look-up of its own when the
    token's role holds the permission: its first API call looks the user up (`_adopt`) and the
    page is refused there, before it uses what the call answered, if the account or its login is
    no longer active or its role no longer may; what the page drew is then thrown away."""
    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            claims = g.get("console_claims")
            if g.get("console_pending") and claims is not None and _role_may(claims.role, module, action):
                g.console_page = (module, action)
                try:
                    drawn = view(*args, **kwargs)
                except PageRefused:
                    drawn = None
                # Looked up by the page's API call by now, or here if it made none.
                if console_user() is None:
                    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
                if not allowed(module, action):
                    return render_template("console/denied.html", module=module, action=action), 403
                return drawn
            if console_user() is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if not allowed(module, action):
                return render_template("console/denied.html", module=module, action=action), 403
            return view(*args, **kwargs)
        return guarded  # type: ignore[return-value]
    return decorate


# Progress bars and colour swatches as SVG, from any template or macro (no inline style: see CSP).
bp.add_app_template_global(charts.meter, "meter")
bp.add_app_template_global(charts.swatch, "swatch")


@bp.app_template_global("status")
def status(value: object) -> Markup:
    """A status as a label (`in_progress` reads "in progress"), its class the raw value. A function,
    not a macro: a list page draws hundreds of them and a macro call costs ten times as much."""
    text = str(escape(value))
    return Markup(f'<span class="status {text}">{text.replace("_", " ")}</span>')


@bp.app_template_global("csrf")
def csrf() -> Markup:
    """A form's hidden CSRF field. A function, not a macro (as `button`): a list draws one a row."""
    return _csrf_field(csrf_token())


def _csrf_field(token: str) -> Markup:
    return Markup(f'<input type="hidden" name="csrf" value="{escape(token)}">')


@bp.app_template_global("button")
def button(action: object, label: object, class_: object = "", confirm: object = None,
           fields: Mapping[str, object] | None = None) -> Markup:
    """A one-button form posting to `action` (with `fields` as hidden inputs; `confirm`: the
    question console.js asks first), byte for byte what the macro it replaces wrote."""
    return _button(csrf_token(), action, label, class_, confirm, fields)


def _button(token: str, action: object, label: object, class_: object = "", confirm: object = None,
            fields: Mapping[str, object] | None = None) -> Markup:
    asks = f' data-confirm="{escape(confirm)}"' if confirm else ""
    hidden = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in (fields or {}).items())
    return Markup(f'\n<form class="inline" method="post" action="{escape(action)}"{asks}>\n'
                  f'  <input type="hidden" name="csrf" value="{escape(token)}">\n'
                  f'  {hidden}\n'
                  f'  <button type="submit" class="{escape(class_)}">{escape(label)}</button>\n'
                  '</form>\n')


@bp.app_template_global("money")
def money(value: object) -> Markup:
    """An amount from the API (a decimal string) in rupees with grouping and paise; "—" for none."""
    if value is None:
        return Markup("—")
    try:
        amount = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        amount = 0.0
    return Markup(f"₹{amount:,.2f}")


@bp.context_processor
def console_context() -> dict[str, Any]:
    """What a console template reads, with the request's values read once a render: the user, the
    matrix's answers, the host and root of its addresses, the session's CSRF token (on first use).
    The functions here stand in for the app-wide template globals of the same names (which read
    Flask's request, session and `g` on every call: a list page calls them a dozen times a row)."""
    user = console_user()
    signed_in = user is not None and user.is_authenticated
    role = user.role if user is not None else None
    grants = _grants() if signed_in else {}
    host, root, current = request.host, request.script_root, request.endpoint
    token = ""

    def allowed_here(module: str, action: str = "read") -> bool:
        return signed_in and permissions.allowed_in(grants, role, module, action)

    def token_here() -> str:
        nonlocal token
        if not token:
            token = csrf_token()
        return token

    def href_here(endpoint: str, filename: str = "", **values: Any) -> str:
        return _href(host, root, endpoint, filename, values)

    def csrf_here() -> Markup:
        return _csrf_field(token_here())

    def button_here(action: object, label: object, class_: object = "", confirm: object = None,
                    fields: Mapping[str, object] | None = None) -> Markup:
        return _button(token_here(), action, label, class_, confirm, fields)

    # (endpoint, label, address, whether it is the page's section)
    nav = [(endpoint, label, href_here(endpoint), bool(current and current.startswith(endpoint)))
           for endpoint, label, module, action in SECTIONS if user and allowed_here(module, action)]
    return {"user": user, "nav": nav, "allowed": allowed_here, "zone": Ombaro.get().settings.timezone,
            "console_href": href_here, "csrf_token": token_here, "csrf": csrf_here, "button": button_here}


# The addresses every page links to (its sections, sign-out, the console's files) and a list's rows
# link or post to, per host and root.
_HREFS: dict[tuple[str, str, str, str, tuple[tuple[str, Any], ...]], str] = {}


@bp.app_template_global("console_href")
def href(endpoint: str, filename: str = "", **values: Any) -> str:
    """`url_for(endpoint, **values)` (or a static `filename`), built once a process instead of a
    dozen times a page: an address depends only on the host, the root it is served under and its
    values (a row's id: the schedules' three forms a row)."""
    return _href(request.host, request.script_root, endpoint, filename, values)


def _href(host: str, root: str, endpoint: str, filename: str, values: dict[str, Any]) -> str:
    key = (host, root, endpoint, filename, tuple(sorted(values.items())) if values else ())
    address = _HREFS.get(key)
    if address is None:
        address = url_for(endpoint, filename=filename) if filename else url_for(endpoint, **values)
        if len(_HREFS) >= 1024:  # any Host header may arrive: bounded
            _HREFS.clear()
        _HREFS[key] = address
    return address


@bp.app_template_filter("when")
def when(value: str | None, seconds: bool = False) -> str:
    """An API timestamp (ISO 8601, UTC) in the platform's zone, as staff read times: 2026-11-27 10:00."""
    if not value:
        return "—"
    return _local_time(value, seconds, Ombaro.get().settings.timezone)


@functools.lru_cache(maxsize=4096)
def _local_time(value: str, seconds: bool, zone: str) -> str:
    """`when`'s text, once a process per timestamp and zone (5 us a call; a list draws one or two a row,
    and the same rows page after page): a function of its arguments alone."""
    moment = dt.datetime.fromisoformat(value).astimezone(ZoneInfo(zone))
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# ---- security headers ----------------------------------------------------------------------------

# Scripts and styles only from the console's own files (console.js, console.css): no inline script,
# no inline style, nothing from elsewhere; never inside a frame (clickjacking).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@bp.after_app_request  # app-wide hook: a console URL that matches no page (404) gets them too
def security_headers(response: Response) -> Response:
    """`SECURITY_HEADERS` (and `Cache-Control: no-store` but for the console's files) on every console
    answer, each where the answer has none of its own: what `headers.setdefault` did name by name, with
    the answer's header names read once (a `setdefault` for an absent name costs a raised KeyError)."""
    path = request.path
    if not (path == "/console" or path.startswith("/console/")):
        return response
    present = {name.lower() for name, _value in response.headers}
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in present:
            response.headers.add(name, value)
    if "cache-control" not in present and request.endpoint != "console.static":
        response.headers.add("Cache-Control", "no-store")  # pages carry tokens and personal data: never cached
    return response


# ---- pages: sign in, sign out ------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the console on this host, or the dashboard. Anything
    else (another host, a scheme, `//host`, a backslash, control characters such as CR/LF that
    would split the Location header) is ignored, never followed and never a 500."""
    if not target or len(target) > 2000 or any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in target):
        return url_for("console.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/console" or parts.path.startswith("/console/")):
        return url_for("console.dashboard")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if console_user():
            return redirect(_safe_next(request.args.get("next")))
        return render_template("console/login.html", next=request.args.get("next", ""))
    answer = api("POST", "/api/v1/auth/login",
                 json={"email": request.form.get("email", ""), "password": request.form.get("password", "")})
    if not answer.ok:
        flash(answer.message if answer.status != 401 else "Wrong email or password.", "error")
        return render_template("console/login.html", next=request.form.get("next", "")), answer.status
    user = user_from_token(answer.body["access_token"])
    if user.role not in STAFF_ROLES:
        api("POST", "/api/v1/auth/logout", json={"refresh_token": answer.body["refresh_token"]},
            token=answer.body["access_token"])
        flash("The console is for platform staff; customers, vendors and therapists use the apps.", "error")
        return render_template("console/login.html", next=""), 403
    session.clear()
    session["access"], session["refresh"] = answer.body["access_token"], answer.body["refresh_token"]
    csrf_token()
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    if "refresh" in session:
        api("POST", "/api/v1/auth/logout", json={"refresh_token": session["refresh"]})
    session.clear()
    return redirect(url_for("console.login"))


@bp.get("/")
def home() -> WerkzeugResponse:
    user = console_user()
    if user is None:
        return redirect(url_for("console.login"))
    for endpoint, _label, module, action in SECTIONS:
        if allowed(module, action):
            return redirect(url_for(endpoint))
    return redirect(url_for("console.login"))
