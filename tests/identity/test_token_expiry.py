"""An access token's expiry is judged one way: by PyJWT when the token is verified, and by
Claims.expired when the console hands its API calls claims it verified earlier (web/auth.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from ombaro.config import Settings, load_settings
from ombaro.identity import tokens


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return load_settings({"OMBARO_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://nowhere/none",
                          "REDIS_URL": "redis://nowhere:1/0"})


def _issued_seconds_ago(settings: Settings, seconds: int) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return tokens.issue_access_token(settings, uuid.uuid4(), "customer", now=now - dt.timedelta(seconds=seconds))


def _verifies(settings: Settings, token: str) -> bool:
    try:
        tokens.verify_access_token(settings, token)
    except tokens.TokenError:
        return False
    return True


@pytest.mark.parametrize("past_expiry", [-30, 30])  # seconds after the token's `exp`; negative: before it
@pytest.mark.parametrize("leeway", [0, 60])
def test_expired_claims_agree_with_the_signature_check(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                      past_expiry: int, leeway: int) -> None:
    monkeypatch.setattr(tokens, "LEEWAY", dt.timedelta(seconds=leeway))
    lifetime = settings.access_token_seconds
    fresh = _issued_seconds_ago(settings, 0)
    claims = tokens.verify_access_token(settings, fresh)  # verified while valid, kept for later
    token = _issued_seconds_ago(settings, lifetime + past_expiry)
    later = claims.expires_at + dt.timedelta(seconds=past_expiry)  # the kept claims, judged this far on
    assert claims.expired(later) is not _verifies(settings, token)
    assert claims.expired(later) is (past_expiry > leeway)
