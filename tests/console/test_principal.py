"""A console page read looks its user up once: its first API call looks the account and its login up
(as for any client of the API) and the page takes that principal, so a role change, a suspension or
an ended login still applies to the very next page."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, text

import web.auth
import web.console.session
from ombaro.config import load_settings
from ombaro.identity import tokens
from tests.factories.accounts import client_for, make_account
from tests.factories.console import signed_in


@pytest.fixture
def look_ups(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the console itself, and the API's authentication, look a token's user up."""
    counts = {"console": 0, "api": 0}

    def counted(where: str, real: Any) -> Any:
        def look_up(token: str, **options: Any) -> Any:
            counts[where] += 1
            return real(token, **options)
        return look_up

    monkeypatch.setattr(web.console.session, "user_from_token", counted("console", web.console.session.user_from_token))
    monkeypatch.setattr(web.auth, "user_from_token", counted("api", web.auth.user_from_token))
    return counts


def test_a_page_read_looks_its_user_up_once_through_its_api_call(app: Any, engine: Engine,
                                                                 look_ups: dict[str, int]) -> None:
    browser = signed_in(app, engine, "it_department")
    look_ups.update(console=0, api=0)
    page = browser.get("/console/schedules")  # one API call: GET /api/v1/schedules
    assert page.status_code == 200 and "Schedules" in page.get_data(as_text=True)
    assert look_ups == {"console": 0, "api": 1}


def test_a_form_post_still_looks_its_user_up_before_acting(app: Any, engine: Engine, clean_jobs: None,
                                                           look_ups: dict[str, int]) -> None:
    browser = signed_in(app, engine, "it_department")
    look_ups.update(console=0, api=0)
    assert browser.post("/console/dashboard/refresh").status_code == 302
    assert look_ups == {"console": 1, "api": 1}


def test_a_role_change_applies_to_the_next_page_at_once(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    assert browser.get("/console/schedules").status_code == 200
    with engine.begin() as connection:  # the access token still says it_department for 15 minutes
        connection.execute(text("UPDATE user_profiles SET role = 'marketing_department' WHERE id = :id"),
                           {"id": browser.account.id})
    page = browser.get("/console/schedules")
    body = page.get_data(as_text=True)
    assert page.status_code == 403 and "may not" in body
    assert "Schedules</a>" not in body.split("</nav>")[0]  # the navigation is the new role's


def test_a_copied_cookie_of_an_ended_login_reaches_no_page_data(app: Any, engine: Engine) -> None:
    browser = signed_in(app, engine, "it_department")
    with engine.begin() as connection:  # the login ends elsewhere (signed out on another device)
        connection.execute(text("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE user_id = :id"),
                           {"id": browser.account.id})
    for path in ("/console/schedules", "/console/jobs", "/console/dashboard"):
        answer = browser.get(path)
        assert answer.status_code == 302 and "/console/login" in answer.headers["Location"], path


def test_a_page_read_checks_its_token_signature_once_for_the_page_and_its_calls(
        app: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = signed_in(app, engine, "directors")
    assert browser.get("/console/dashboard").status_code == 200  # the console's claims cache is warm
    checks: list[str] = []
    real = web.auth.tokens.verify_access_token

    def counted(settings: Any, token: str) -> Any:
        checks.append(token)
        return real(settings, token)

    monkeypatch.setattr(web.auth.tokens, "verify_access_token", counted)
    page = browser.get("/console/dashboard")  # two API calls, each still looking the account up
    assert page.status_code == 200 and not checks


def test_claims_handed_to_the_api_serve_only_their_own_token_and_only_until_they_expire(app: Any,
                                                                                          engine: Engine) -> None:
    owner, other = make_account(engine, "it_department"), make_account(engine, "marketing_department")
    owner_claims = tokens.verify_access_token(load_settings(), owner.token)
    client = client_for(app)
    # Another token with the owner's claims beside it is verified as itself: the owner's rights do not follow.
    client.environ_base.update({"HTTP_AUTHORIZATION": f"Bearer {other.token}",
                                web.auth.VERIFIED_CLAIMS: (owner.token, owner_claims)})
    assert client.get("/api/v1/schedules").status_code == 403  # marketing may not read schedules
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer not-a-token"
    assert client.get("/api/v1/schedules").status_code == 401
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {owner.token}"
    assert client.get("/api/v1/schedules").status_code == 200
    expired = dataclasses.replace(owner_claims, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    client.environ_base.update({web.auth.VERIFIED_CLAIMS: (owner.token, expired), web.auth.FRESH_PRINCIPAL: True})
    assert client.get("/api/v1/schedules").status_code == 401
