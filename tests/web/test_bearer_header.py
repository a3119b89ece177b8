"""web.auth.resolve_user reads the Authorization header (issue 16, session 10: from the WSGI
environ, the key werkzeug's headers read): `Bearer <token>`, the scheme in any case and the token's
surrounding spaces ignored; anything else is a 401, and no header at all is anonymous."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tests.factories.accounts import client_for, make_account


def test_the_bearer_header_in_its_accepted_and_refused_forms(app: Any, engine: Engine) -> None:
    customer = make_account(engine, "customer")
    token = customer.token
    client = client_for(app)
    for accepted in (f"Bearer {token}", f"bearer {token}", f"BEARER   {token}  "):
        assert client.get("/api/v1/bookings", headers={"Authorization": accepted}).status_code == 200, accepted
    for refused in ("Bearer", "Bearer ", "Bearer    ", f"Basic {token}", token, f"Token {token}", "Bearer not-a-token"):
        answer = client.get("/api/v1/bookings", headers={"Authorization": refused})
        assert answer.status_code == 401, (refused, answer.json)
    assert client.get("/api/v1/bookings").status_code == 401  # anonymous: the permission asks for a token
    assert client.get("/healthz", headers={"Authorization": "Basic x"}).status_code == 401  # checked on every route
    assert client.get("/api/v1/no-such-route", headers={"Authorization": "Basic x"}).status_code == 404
