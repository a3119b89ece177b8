"""The console's session and page security: a sealed cookie that dies with the login, security
headers without inline script, CSRF on the login form, and a `next` that never redirects away or 500s."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import Engine

from tests.console.conftest import signed_in

COOKIE = "session"


def cookie_of(client: Any) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "signed in without a session cookie"
    return str(cookie.value)


def test_the_cookie_is_sealed_and_shows_no_token(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    value = cookie_of(browser.client)
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for readable in (value.encode(), raw):
        assert b"refresh" not in readable and b"access" not in readable and b"eyJ" not in readable
    assert browser.get("/console/jobs").status_code == 200

    # One bit flipped anywhere: the cookie does not open, the visitor is signed out (not a 500).
    tampered = bytearray(raw)
    tampered[len(tampered) // 2] ^= 1
    thief = app.test_client()
    thief.set_cookie(COOKIE, base64.urlsafe_b64encode(bytes(tampered)).decode())
    answer = thief.get("/console/jobs")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_a_copied_cookie_is_dead_once_its_owner_signs_out(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    copy = app.test_client()
    copy.environ_base["REMOTE_ADDR"] = browser.client.environ_base["REMOTE_ADDR"]
    copy.set_cookie(COOKIE, cookie_of(browser.client))
    assert copy.get("/console/jobs").status_code == 200  # the copy works while the owner is signed in

    assert browser.post("/console/logout").status_code == 302
    answer = copy.get("/console/jobs")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_suspension_signs_the_console_out_at_once(app: Any, engine: Engine) -> None:
    from tests.helpers import make_account
    from tests.identity.conftest import client_for

    browser = signed_in(app, engine, "it_department")
    admin = make_account(engine, "super_admin")
    assert client_for(app, admin).put(f"/api/v1/users/{browser.account.id}/status",
                                      json={"status": "suspended"}).status_code == 200
    answer = browser.get("/console/jobs")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]
