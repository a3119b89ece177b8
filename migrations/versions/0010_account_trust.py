"""Account trust (docs/access.md): who created each account, and employee codes from a sequence.

`user_profiles.created_by` lets an approval refuse an approver whose account the maker created
(maker-checker through a made-up colleague). `employee_code_seq` replaces a text max() over the
codes, which sorted EMP9999 above EMP10000 and handed out a taken code; it starts above every
existing EMPnnnn code.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: accounts made before this revision have no recorded creator.
    op.add_column("user_profiles", sa.Column("created_by", sa.Uuid(), nullable=True))
    op.create_foreign_key("fk_user_profiles_created_by_users", "user_profiles", "users", ["created_by"], ["id"],
                          referent_schema="auth", ondelete="SET NULL")
    op.create_index("idx_user_profiles_created_by", "user_profiles", ["created_by"],
                    postgresql_where=sa.text("created_by IS NOT NULL"))
    op.execute("CREATE SEQUENCE employee_code_seq AS bigint MINVALUE 1")
    op.execute("""
        SELECT setval('employee_code_seq', greatest(1, coalesce(max(n), 0)), coalesce(max(n), 0) > 0)
        FROM (SELECT substring(employee_code FROM '^EMP([0-9]{1,18})$')::bigint AS n FROM employees) AS codes
    """)
    # The request role never creates accounts (the service connection does), but reading the
    # sequence's grants stays explicit.
    op.execute("REVOKE ALL ON SEQUENCE employee_code_seq FROM PUBLIC")
    # SECURITY DEFINER: an approver's request role may not read other users' profiles, yet the
    # check must walk the whole chain of creators. It answers one yes/no, nothing else.
    op.execute("""
        CREATE FUNCTION auth.made_by(account uuid, maker uuid) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
            WITH RECURSIVE chain (creator, depth) AS (
                SELECT created_by, 1 FROM public.user_profiles WHERE id = account
                UNION ALL
                SELECT p.created_by, c.depth + 1 FROM public.user_profiles AS p JOIN chain AS c ON p.id = c.creator
                WHERE c.depth < 64
            )
            SELECT EXISTS (SELECT 1 FROM chain WHERE creator = maker)
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION auth.made_by(uuid, uuid) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION auth.made_by(uuid, uuid) TO ombaro_api, ombaro_worker")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS auth.made_by(uuid, uuid)")
    op.execute("DROP SEQUENCE IF EXISTS employee_code_seq")
    op.drop_index("idx_user_profiles_created_by", table_name="user_profiles")
    op.drop_constraint("fk_user_profiles_created_by_users", "user_profiles", type_="foreignkey")
    op.drop_column("user_profiles", "created_by")
