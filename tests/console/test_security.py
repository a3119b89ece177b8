"""The console's session and page security: a sealed cookie that dies with the login, security
headers without inline script, CSRF on the login form, and a `next` that never redirects away or 500s."""

from __future__ import annotations

import ast
import base64
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine

from ombaro.config import PROJECT_ROOT
from tests.factories.accounts import PASSWORD, make_account
from tests.factories.console import Browser, signed_in

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
    from tests.factories.accounts import client_for

    browser = signed_in(app, engine, "it_department")
    admin = make_account(engine, "super_admin")
    assert client_for(app, admin).put(f"/api/v1/users/{browser.account.id}/status",
                                      json={"status": "suspended"}).status_code == 200
    answer = browser.get("/console/jobs")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


# --- headers and no inline script ------------------------------------------------------------------

INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\sstyle\s*=|javascript:", re.IGNORECASE)


def test_every_console_answer_carries_the_security_headers(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    for path in ("/console/login", "/console/jobs", "/console/schedules", "/console/static/console.js",
                 "/console/no-such-page"):
        headers = browser.get(path).headers
        policy = headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, path
        assert headers.get("X-Frame-Options") == "DENY", path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert headers.get("Referrer-Policy") == "same-origin", path
    assert browser.get("/console/jobs").headers.get("Cache-Control") == "no-store"


@pytest.mark.parametrize("role", ["super_admin", "hr_department", "accounts_department", "marketing_department",
                                  "fo_department"])
def test_no_page_has_inline_script_or_style(app: Any, engine: Engine, role: str) -> None:
    """The policy would block them in a browser: a page that needs one is broken there."""
    browser = signed_in(app, engine, role)
    pages = ["/console/login", "/console/jobs", "/console/dashboard", "/console/schedules", "/console/settlements",
             "/console/payroll", "/console/campaigns", "/console/dispatch"]
    for path in pages:
        answer = browser.get(path)
        assert answer.status_code in (200, 302, 403), path
        html = answer.get_data(as_text=True)
        assert not INLINE.findall(html), (path, INLINE.findall(html)[:3])


# --- the login form ------------------------------------------------------------------------------


def test_the_login_form_refuses_a_post_without_its_csrf_token(app: Any, engine: Engine) -> None:
    account = make_account(engine, "it_department")
    forged = app.test_client()  # an attacker's page posting its own credentials into the victim's browser
    answer = forged.post("/console/login", data={"email": account.email, "password": PASSWORD})
    assert answer.status_code == 403
    assert "sign in again" in answer.get_data(as_text=True)
    assert forged.get("/console/jobs").status_code == 302  # not signed in
    other = app.test_client()
    other.get("/console/login")
    answer = other.post("/console/login", data={"email": account.email, "password": PASSWORD,
                                                "csrf": "a token from somewhere else"})
    assert answer.status_code == 403
    assert Browser(app, account).login().status_code == 302  # with the form's token it works


BAD_NEXT = ["/console/jobs\r\nSet-Cookie: x=1", "/console/jobs%0d%0aX: y", "https://evil.example/console",
            "//evil.example/console", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
            "/console\\..\\evil", "http:/console", "/consolexyz", "/api/v1/auth/me", " /console/jobs",
            "\u2028/console"]


def test_a_next_with_a_nul_is_refused_by_the_sanitation_step_never_followed(app: Any, engine: Engine) -> None:
    """A NUL never reaches the console: the sanitation step every request passes (web/sanitize.py)
    answers 400 naming `next` before the form is read, so nothing signs in and nothing redirects."""
    browser = Browser(app, make_account(engine, "it_department"))
    answer = browser.login_form(email=browser.account.email, password=PASSWORD, next="/console/jobs\x00")
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.mimetype == "application/problem+json" and "next" in answer.json["errors"]
    assert browser.client.get("/console/jobs").status_code == 302  # still signed out: back to the login page
    assert browser.client.get("/console/login", query_string={"next": "/console/jobs\x00"}).status_code == 400


@pytest.mark.parametrize("target", BAD_NEXT)
def test_a_bad_next_is_ignored_never_followed_never_a_500(app: Any, engine: Engine, target: str) -> None:
    browser = Browser(app, make_account(engine, "it_department"))
    answer = browser.login_form(email=browser.account.email, password=PASSWORD, next=target)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    location = urlsplit(answer.headers["Location"])
    assert location.netloc in ("", "localhost") and location.path.startswith("/console"), location
    assert "\r" not in answer.headers["Location"] and "\n" not in answer.headers["Location"]
    # Signed in, the login page redirects at once: the same rule.
    again = browser.client.get("/console/login", query_string={"next": target})
    assert again.status_code == 302
    location = urlsplit(again.headers["Location"])
    assert location.netloc in ("", "localhost") and location.path.startswith("/console"), location
    # Signed out, the login page shows the form (the value escaped into it), not a 500.
    shown = app.test_client().get("/console/login", query_string={"next": target})
    assert shown.status_code == 200


def test_a_good_next_is_followed(app: Any, engine: Engine) -> None:
    browser = Browser(app, make_account(engine, "it_department"))
    answer = browser.login_form(email=browser.account.email, password=PASSWORD, next="/console/schedules?x=1")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/schedules?x=1")


def test_an_expired_access_token_is_rotated_inside_the_sealed_cookie(app: Any, engine: Engine) -> None:
    import datetime as dt

    import jwt

    from ombaro.identity import tokens
    from web.console.session import SealedCookie

    browser = signed_in(app, engine, "it_department")
    sealer = SealedCookie(app.secret_key)
    state = sealer.loads(cookie_of(browser.client))
    settings = app.extensions["ombaro"].settings
    login = jwt.decode(state["access"], options={"verify_signature": False})["sid"]
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    state["access"] = tokens.issue_access_token(settings, browser.account.id, "it_department",
                                                session_id=uuid.UUID(login), now=long_ago)
    browser.client.set_cookie(COOKIE, sealer.dumps(state))

    assert browser.get("/console/jobs").status_code == 200  # rotated with the refresh token, not signed out
    rotated = sealer.loads(cookie_of(browser.client))
    assert rotated["refresh"] != state["refresh"] and rotated["access"] != state["access"]
    assert jwt.decode(rotated["access"], options={"verify_signature": False})["sid"] == login  # the same login
    assert browser.get("/console/schedules").status_code == 200


def _test_tooling_used(path: Path) -> list[str]:
    """Werkzeug's or Flask's test client (or its runner) named in a source file; building an
    environ with `werkzeug.test.EnvironBuilder` is request building, not test tooling."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("test_client", "test_request_context"):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("flask.testing", "werkzeug.test"):
            found += [f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names
                      if a.name != "EnvironBuilder"]
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                      if a.name in ("flask.testing", "werkzeug.test")]
    return found


def test_the_console_calls_the_api_without_test_tooling(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from werkzeug.test import Client, EnvironBuilder\n\ndef f(app):\n    app.test_client()\n")
    assert _test_tooling_used(probe) == ["probe.py:1 werkzeug.test.Client", "probe.py:4 .test_client"]
    used = [hit for package in ("web", "ombaro", "workers", "beat", "cli")
            for path in sorted((PROJECT_ROOT / package).rglob("*.py")) for hit in _test_tooling_used(path)]
    assert not used, used


def test_a_cookie_opened_before_is_not_opened_again_and_still_ages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cookie page after page is opened (base64, the cipher, the tagged JSON) once; its sealed
    age is checked every time, each caller gets a dict of its own, a tampered cookie never opens, and a
    session holding a list (flashed messages) is opened afresh each time (a shared list would leak)."""
    import time

    from itsdangerous import BadSignature

    from web.console.session import SealedCookie

    sealer = SealedCookie(b"k" * 32)
    opened: list[str] = []
    real = sealer._open

    def counting(cookie: str) -> Any:
        opened.append(cookie)
        return real(cookie)

    monkeypatch.setattr(sealer, "_open", counting)
    cookie = sealer.dumps({"access": "a.b.c", "refresh": "r", "csrf": "t", "n": 3, "none": None})
    first, second = sealer.loads(cookie, 60), sealer.loads(cookie, 60)
    assert first == second == {"access": "a.b.c", "refresh": "r", "csrf": "t", "n": 3, "none": None}
    first["csrf"] = "changed"
    assert sealer.loads(cookie, 60)["csrf"] == "t" and opened == [cookie]

    monkeypatch.setattr(time, "time", lambda: 10**10)  # long after it was sealed
    with pytest.raises(BadSignature, match="too old"):
        sealer.loads(cookie, 60)
    monkeypatch.undo()

    tampered = base64.urlsafe_b64encode(bytes([base64.urlsafe_b64decode(cookie)[0] ^ 1])
                                        + base64.urlsafe_b64decode(cookie)[1:]).decode()
    for _ in range(2):
        with pytest.raises(BadSignature, match="does not open"):
            sealer.loads(tampered)

    flashed = sealer.dumps({"csrf": "t", "_flashes": [("ok", "Saved.")]})
    sealer.loads(flashed)["_flashes"].append(("error", "leaked"))
    assert sealer.loads(flashed)["_flashes"] == [("ok", "Saved.")]
