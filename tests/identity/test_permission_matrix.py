"""Every endpoint x every role (and anonymous, and every kind of bad token) against the matrix.

The expected answer comes from the seeded permission matrix, so an endpoint added without a
declared permission, or with one that lets the wrong roles in, fails here."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import jwt
import pytest

from ombaro.access.permissions import allowed_by, default_grants
from ombaro.access.roles import ROLES
from ombaro.config import load_settings
from tests.factories.accounts import Account, client_for
from web.auth import permission_of

SKIP_METHODS = {"HEAD", "OPTIONS"}


def api_endpoints(app: Any) -> list[tuple[str, str, str]]:
    """(method, concrete path, endpoint) for every /api/v1 route."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule
        for name, converter in rule._converters.items():
            value = str(uuid.uuid4()) if type(converter).__name__ == "UUIDConverter" else "customer"
            for token in (f"<uuid:{name}>", f"<{name}>", f"<string:{name}>"):
                path = path.replace(token, value)
        for method in sorted(rule.methods - SKIP_METHODS):
            found.append((method, path, rule.endpoint))
    return found


def call(client: Any, method: str, path: str) -> Any:
    return client.open(path, method=method, json={} if method in {"POST", "PUT", "PATCH"} else None)


def test_every_api_endpoint_declares_its_permission(app: Any) -> None:
    undeclared = [f"{m} {p}" for m, p, endpoint in api_endpoints(app)
                  if permission_of(app.view_functions[endpoint]) is None]
    assert undeclared == []
    assert len(api_endpoints(app)) >= 15


def test_every_role_gets_exactly_what_the_matrix_grants(app: Any, role_accounts: dict[str, Account]) -> None:
    grants = default_grants()
    wrong = []
    for method, path, endpoint in api_endpoints(app):
        permission = permission_of(app.view_functions[endpoint])
        assert permission is not None
        for role in ROLES:
            client = client_for(app, role_accounts[role])
            status = call(client, method, path).status_code
            if permission.public or permission.module is None:
                expected_allowed = True
            else:
                expected_allowed = allowed_by(grants, role, permission.module, str(permission.action))
            if expected_allowed == (status in (401, 403)):
                wrong.append(f"{role:<22} {method:<6} {path}: {status} (permission {permission})")
    assert wrong == []


def test_anonymous_callers_get_401_except_on_public_endpoints(app: Any) -> None:
    wrong = []
    for method, path, endpoint in api_endpoints(app):
        permission = permission_of(app.view_functions[endpoint])
        status = call(client_for(app), method, path).status_code
        if (status == 401) == bool(permission and permission.public):
            wrong.append(f"{method} {path}: {status} ({permission})")
    assert wrong == []


def _bad_tokens(account: Account) -> dict[str, str]:
    settings = load_settings()
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": str(account.id), "role": "super_admin", "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience, "iat": now, "exp": now + dt.timedelta(minutes=5)}
    header, payload, signature = account.token.split(".")
    return {
        "expired": jwt.encode({**claims, "role": account.role, "iat": now - dt.timedelta(hours=2),
                               "exp": now - dt.timedelta(hours=1)}, settings.jwt_secret, algorithm="HS256"),
        "tampered": ".".join([header, jwt.utils.base64url_encode(
            jwt.utils.base64url_decode(payload).replace(account.role.encode(), b"super_admin")).decode(), signature]),
        "alg_none": jwt.encode(claims, key=None, algorithm="none"),
        "wrong_audience": jwt.encode({**claims, "aud": "someone-else"}, settings.jwt_secret, algorithm="HS256"),
        "wrong_issuer": jwt.encode({**claims, "iss": "evil"}, settings.jwt_secret, algorithm="HS256"),
        "wrong_secret": jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS256"),
        "not_a_jwt": "definitely-not-a-token",
    }


@pytest.mark.parametrize("kind", ["expired", "tampered", "alg_none", "wrong_audience", "wrong_issuer",
                                  "wrong_secret", "not_a_jwt"])
def test_a_bad_token_is_401_on_every_endpoint(app: Any, role_accounts: dict[str, Account], kind: str) -> None:
    token = _bad_tokens(role_accounts["customer"])[kind]
    wrong = []
    for method, path, _ in api_endpoints(app):
        client = client_for(app)
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        response = call(client, method, path)
        if response.status_code != 401 or "Bearer" not in response.headers.get("WWW-Authenticate", ""):
            wrong.append(f"{method} {path}: {response.status_code}")
    assert wrong == []
