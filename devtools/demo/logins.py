"""Demo logins: one account per role gets a known password (development data only)."""

from __future__ import annotations

import sqlalchemy as sa

DEMO_PASSWORD = "ombaro-demo-2026"  # development data only; printed by `ombaro seed --demo`


def enable_demo_logins(conn: sa.Connection, *, password: str = DEMO_PASSWORD) -> list[tuple[str, str]]:
    """Give one demo account of each role present a known password (and add a super admin), so a
    person trying the engine can log in as finance, HR, a vendor, a customer... Returns (email, role)."""
    from sqlalchemy.orm import Session

    from ombaro.identity import accounts, passwords

    session = Session(bind=conn)
    if not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM user_profiles WHERE role = 'super_admin')")).scalar():
        user = accounts._new_user(session, email="super.admin@ombaro.test", mobile="+919000000001",
                                  password=password, name="Super Admin", role="super_admin")
        session.flush()
        conn.execute(sa.text("INSERT INTO employees (id, employee_code, name, email, mobile, department, "
                             "designation, joining_date) VALUES (:id, 'EMP9999', 'Super Admin', :email, "
                             "'+919000000001', 'management', 'Platform Administrator', '2024-04-01')"),
                     {"id": user.id, "email": user.email})
    chosen = conn.execute(sa.text(
        "SELECT DISTINCT ON (p.role) u.id, u.email, p.role FROM user_profiles p JOIN auth.users u ON u.id = p.id "
        "WHERE p.status = 'active' ORDER BY p.role, u.email")).all()
    hashed = passwords.hash_password(password)
    conn.execute(sa.text("UPDATE auth.users SET encrypted_password = :h WHERE id = ANY(:ids)"),
                 {"h": hashed, "ids": [row.id for row in chosen]})
    return [(row.email, row.role) for row in chosen]
