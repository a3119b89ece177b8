"""Sessions end at once: after logout, suspension, a password change or a copied refresh token,
the access token of that login is refused on its next request, not when it expires."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import PASSWORD, client_for, make_account


def login(app: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    answer = client_for(app).post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.json
    return answer.json


def me(app: Any, access_token: str) -> Any:
    return client_for(app).get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"})


def test_logout_ends_the_access_token_at_once_and_only_that_login(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    laptop, phone = login(app, account.email), login(app, account.email)
    assert me(app, laptop["access_token"]).status_code == 200
    out = client_for(app).post("/api/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]},
                               headers={"Authorization": f"Bearer {laptop['access_token']}"})
    assert out.status_code == 204
    after = me(app, laptop["access_token"])
    assert after.status_code == 401 and after.content_type == "application/problem+json"
    assert "ended" in after.json["detail"]
    assert me(app, phone["access_token"]).status_code == 200  # the other device stays signed in


def test_logout_without_the_refresh_token_still_ends_the_login(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    pair = login(app, account.email)
    out = client_for(app).post("/api/v1/auth/logout", json={},
                               headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert out.status_code == 204
    assert me(app, pair["access_token"]).status_code == 401
    assert client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code \
        == 401


def test_a_refreshed_access_token_belongs_to_the_same_login(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    pair = login(app, account.email)
    fresh = client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json
    assert me(app, fresh["access_token"]).status_code == 200
    client_for(app).post("/api/v1/auth/logout", json={}, headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me(app, fresh["access_token"]).status_code == 401  # logging out with the old one ends the login


def test_suspension_ends_every_login_even_after_reactivation(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    admin = make_account(engine, "admin")
    pair = login(app, account.email)
    client_for(app, admin).put(f"/api/v1/users/{account.id}/status", json={"status": "suspended"})
    assert me(app, pair["access_token"]).status_code == 403
    client_for(app, admin).put(f"/api/v1/users/{account.id}/status", json={"status": "active"})
    assert me(app, pair["access_token"]).status_code == 401  # re-activation does not revive old logins
    assert me(app, login(app, account.email)["access_token"]).status_code == 200


def test_a_password_change_ends_every_other_login(app: Any, engine: Engine) -> None:
    account = make_account(engine, "employee")
    stolen, mine = login(app, account.email), login(app, account.email)
    wrong = client_for(app).post("/api/v1/auth/password", json={"current_password": "not it at all",
                                                                "new_password": "a brand new passphrase"},
                                 headers={"Authorization": f"Bearer {mine['access_token']}"})
    assert wrong.status_code == 403 and me(app, stolen["access_token"]).status_code == 200
    changed = client_for(app).post("/api/v1/auth/password", json={"current_password": PASSWORD,
                                                                  "new_password": "a brand new passphrase"},
                                   headers={"Authorization": f"Bearer {mine['access_token']}"})
    assert changed.status_code == 200, changed.json
    assert me(app, stolen["access_token"]).status_code == 401
    assert me(app, mine["access_token"]).status_code == 401
    assert me(app, changed.json["access_token"]).status_code == 200  # this device continues with a new login
    assert client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": stolen["refresh_token"]}).status_code \
        == 401
    assert client_for(app).post("/api/v1/auth/login", json={"email": account.email,
                                                            "password": PASSWORD}).status_code == 401
    login(app, account.email, "a brand new passphrase")


def test_a_reused_refresh_token_ends_the_logins_access_tokens(app: Any, engine: Engine) -> None:
    account = make_account(engine, "customer")
    pair = login(app, account.email)
    thief = client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json
    replay = client_for(app).post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401
    assert me(app, thief["access_token"]).status_code == 401
    assert me(app, pair["access_token"]).status_code == 401


def test_every_issued_access_token_names_its_login(app: Any, engine: Engine) -> None:
    import jwt

    account = make_account(engine, "customer")
    pair = login(app, account.email)
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    with engine.connect() as conn:
        family = conn.execute(text("SELECT DISTINCT family_id FROM auth.refresh_tokens WHERE user_id = :u"),
                              {"u": account.id}).scalar_one()
    assert claims["sid"] == str(family)
