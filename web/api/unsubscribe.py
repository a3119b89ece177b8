"""One-click unsubscribe (RFC 8058) from a marketing email's List-Unsubscribe header or link,
without logging in: the signed token in the URL is the authority. GET shows what the link does
(mail scanners fetch links; a GET changes nothing); POST unsubscribes, once.

Written on the service session as the workers' role: the caller is anonymous and the token, not a
login, authorises the change to that one customer's preferences."""

from __future__ import annotations

import html
from typing import Any

from flask import Response, request

from ombaro.campaigns import unsubscribe
from ombaro.db import WORKER_ROLE, act_as
from web.auth import public
from web.extension import Ombaro
from web.sanitize import Blueprint

blp = Blueprint("unsubscribe", __name__, url_prefix="/api/v1/unsubscribe", description="One-click unsubscribe")

CHANNEL_NAMES = {"email": "emails", "sms": "text messages", "whatsapp": "WhatsApp messages",
                 "push": "push notifications", "in_app": "in-app offers"}


def _page(title: str, body: str, status: int = 200) -> Response:
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:32em;margin:3em auto'><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")
    return Response(page, status=status, mimetype="text/html")


def _wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


UNSUBSCRIBE_STATE = {"type": "object", "required": ["channel", "used"], "properties": {
    "channel": {"type": "string"}, "used": {"type": "boolean"}}}
UNSUBSCRIBED = {"type": "object", "required": ["unsubscribed", "channel"], "properties": {
    "unsubscribed": {"type": "boolean", "enum": [True]}, "channel": {"type": "string"}}}
HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
# The signed token (web-safe base64 of the payload, a dot, the signature); a longer one is not ours.
TOKEN = {"name": "token", "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 3, "maxLength": 512, "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"}}


@blp.get("/<token>")
@public
@blp.doc(parameters=[TOKEN], responses={"200": {
    "description": "what the link does: JSON, or a page with a button when the client prefers text/html",
    "content": {"application/json": {"schema": UNSUBSCRIBE_STATE}, **HTML_PAGE}}})
def confirm(token: str) -> Any:
    """What the link does, with a button that POSTs to it."""
    ombaro = Ombaro.get()
    with ombaro.sessions() as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": None, "purpose": "unsubscribe"})
        channel, used = unsubscribe.peek(session, ombaro.settings.messaging.unsubscribe_secret, token)
    what = CHANNEL_NAMES.get(channel, channel)
    if not _wants_html():
        return {"channel": channel, "used": used}
    if used:
        return _page("You are unsubscribed", f"<p>You no longer receive marketing {what} from OMBARO.</p>")
    return _page("Unsubscribe", f"<p>Stop receiving marketing {what} from OMBARO?</p>"
                 f"<form method='post'><button type='submit'>Unsubscribe</button></form>")


@blp.post("/<token>")
@public
@blp.doc(parameters=[TOKEN], responses={"200": {
    "description": "unsubscribed (JSON, or a page when the client prefers text/html)",
    "content": {"application/json": {"schema": UNSUBSCRIBED}, **HTML_PAGE}}})
@blp.alt_response(410, description="The link was already used.")
def unsubscribe_now(token: str) -> Any:
    """Turn the channel off for this customer (the mail client's one-click POST lands here)."""
    ombaro = Ombaro.get()
    with ombaro.sessions() as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": None, "purpose": "unsubscribe"})
        done = unsubscribe.use(session, ombaro.settings.messaging.unsubscribe_secret, token)
    if _wants_html():
        what = CHANNEL_NAMES.get(done.channel, done.channel)
        return _page("You are unsubscribed", f"<p>You will no longer receive marketing {what} from OMBARO.</p>")
    return {"unsubscribed": True, "channel": done.channel}
