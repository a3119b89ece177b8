"""The HTTP API: Flask + flask-smorest. Handlers load, authorise, submit and answer; the domain
lives in `ombaro`, the work in `workers`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import redis
from flask import Flask

from ombaro import logs
from ombaro.config import load_settings
from ombaro.db import database_engine, session_factory
from web import auth, observability
from web.errors import register_error_handlers
from web.extension import Ombaro
from web.sanitize import check_request


class OmbaroFlask(Flask):
    """Flask, with `ensure_sync`'s answer kept per function (issue 16): Flask asks it of every hook,
    view and handler on every request (a dozen times a console page, and again for each API call the
    page makes), and each time `inspect.iscoroutinefunction` works it out afresh, though whether a
    function is `async def` never changes. Only plain functions are remembered; anything else goes
    to Flask's own `ensure_sync` every time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            if func in self._synchronous:
                return func
        except TypeError:  # an unhashable callable: asked afresh
            return super().ensure_sync(func)
        answer = super().ensure_sync(func)
        if answer is func:  # synchronous as it is
            if len(self._synchronous) >= 4096:  # bounded: bound methods are new objects
                self._synchronous.clear()
            self._synchronous.add(func)
        return answer


def before_request() -> None:
    """What every request does first, in this order, as one hook (issue 16: Flask calls each hook
    through `ensure_sync`, a cost per hook and request on the hot reads): its id and metrics (so
    that even a refused request has them), the sanitation (before anything parses the request,
    docs/architecture.md), then the caller (resolve_user)."""
    observability.begin_request()
    check_request()
    auth.resolve_user()


def create_app(test_config: Mapping[str, str] | None = None) -> Flask:
    """Build the app. `test_config` overrides environment variables (DATABASE_URL, REDIS_URL, ...)."""
    settings = load_settings({**os.environ, **(test_config or {})})
    logs.configure(level=settings.log_level, fmt=settings.log_format, process="web")
    app = OmbaroFlask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="OMBARO Ops",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH=None,
        OPENAPI_SWAGGER_UI_PATH=None,
        JSON_SORT_KEYS=False,
        API_SPEC_OPTIONS={
            "info": {"description": (
                "Commands and reads of the OMBARO operations engine. Every request first passes one "
                "sanitation step: a string (or member name, query or form value) holding a NUL character "
                "or an unpaired surrogate, JSON nested deeper than 32 levels, an integer of more than 30 "
                "digits or a non-finite number is refused with a 400 problem naming where it is "
                "(docs/api-contract.md).")},
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                              "bearerFormat": "JWT"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    engine = database_engine(settings)
    from workers.app import enqueuer  # the web layer enqueues; it never runs tasks

    app.extensions["ombaro"] = Ombaro(
        settings=settings, engine=engine, sessions=session_factory(engine), enqueue=enqueuer(settings.broker_url),
        redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2))
    from web import openapi

    api = openapi.init_app(app)
    register_error_handlers(app)

    from web.api import blueprints, docs, health
    from web.audit import record_staff_changes

    observability.init_app(app, settings.redis_url)
    auth.init_app(app)  # the principal cache
    app.before_request(before_request)
    app.after_request(record_staff_changes)
    for blueprint in blueprints():
        api.register_blueprint(blueprint)
    openapi.finish(api)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    from web.console import bp as console
    from web.console.session import session_secret

    app.secret_key = session_secret(settings.jwt_secret)
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SECURE=settings.secure_cookies, PERMANENT_SESSION_LIFETIME=12 * 3600)
    app.register_blueprint(console)
    app.teardown_appcontext(Ombaro.close_session)
    return app
