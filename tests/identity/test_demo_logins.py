"""The demo data set comes with one login per role, so a person can try the engine at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from devtools.demo import DEMO_PASSWORD, enable_demo_logins, seed_demo
from tests.factories.accounts import client_for
from tests.services import migrate


def test_demo_logins_work_for_every_role_present(make_database: Any, app_factory: Any) -> None:
    url = make_database()
    migrate(url)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        seed_demo(conn, scale=0.02, today=dt.date(2026, 11, 26))
        logins = dict((role, email) for email, role in enable_demo_logins(conn))
    assert {"super_admin", "customer", "vendor", "therapist", "finance_department", "hr_department"} <= set(logins)
    app = app_factory(DATABASE_URL=url)
    for role in ("super_admin", "finance_department", "vendor", "customer"):
        response = client_for(app).post("/api/v1/auth/login", json={"email": logins[role], "password": DEMO_PASSWORD})
        assert response.status_code == 200, (role, response.json)
        me = client_for(app).get("/api/v1/auth/me",
                                 headers={"Authorization": f"Bearer {response.json['access_token']}"})
        assert me.json["role"] == role
