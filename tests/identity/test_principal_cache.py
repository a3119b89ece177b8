"""The principal cache (web/auth.py, docs/security.md): a process trusts its look-up of an access
token's account for at most a second, so a suspension, sign-out or role change made elsewhere (another
gunicorn worker, the CLI, SQL) applies within that second, and one made through this process at once."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import PASSWORD, client_for, make_account
from web.auth import PRINCIPAL_TTL_SECONDS, CurrentUser, PrincipalCache


def me(app: Any, token: str) -> int:
    status: int = client_for(app).get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
    return status


def test_a_suspension_made_in_another_process_applies_within_the_bound(app: Any, engine: Engine) -> None:
    customer = make_account(engine, "customer")
    token = client_for(app).post("/api/v1/auth/login", json={"email": customer.email, "password": PASSWORD}).json[
        "access_token"]
    assert me(app, token) == 200  # looked up, and remembered
    with engine.begin() as conn:  # what an admin's request on another worker does
        conn.execute(text("UPDATE user_profiles SET status = 'suspended' WHERE id = :id"), {"id": customer.id})
        conn.execute(text("UPDATE auth.refresh_tokens SET revoked_at = now(), revoked_reason = 'test' "
                          "WHERE user_id = :id AND revoked_at IS NULL"), {"id": customer.id})
    changed = time.monotonic()
    while me(app, token) == 200:
        assert time.monotonic() - changed < PRINCIPAL_TTL_SECONDS + 0.5, "still let in past the bound"
        time.sleep(0.05)
    assert me(app, token) == 403


def test_a_role_change_through_this_process_applies_at_once(app: Any, engine: Engine) -> None:
    """Any state-changing request to the accounts' endpoints empties the cache, refused or not."""
    customer = make_account(engine, "customer")
    assert client_for(app, customer).get("/api/v1/bookings").status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_profiles SET status = 'suspended' WHERE id = :id"), {"id": customer.id})
    client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": "not a token"})  # refused: 401
    assert client_for(app, customer).get("/api/v1/bookings").status_code == 403


def test_the_cache_forgets_an_entry_after_its_ttl_or_its_tokens_expiry() -> None:
    user = CurrentUser(uuid.uuid4(), "customer")
    cache = PrincipalCache(ttl=0.2, limit=3)
    cache.put("fresh", user, time.time() + 60)
    cache.put("expired", user, time.time() - 1)
    assert cache.get("fresh") == user and cache.get("expired") is None and cache.get("unknown") is None
    time.sleep(0.25)
    assert cache.get("fresh") is None
    for n in range(4):  # past the limit it starts over instead of growing
        cache.put(f"t{n}", user, time.time() + 60)
    assert cache.get("t0") is None and cache.get("t3") == user
