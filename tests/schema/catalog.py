"""The database catalog after `upgrade head`, as sorted text lines: schemas, extensions, types,
tables, columns, constraints, indexes, policies, triggers, functions, views, sequences and grants.

`tests/schema/test_catalog.py` compares a freshly migrated database with the snapshot
`tests/schema/catalog.txt`, so a change to what the shipped migrations create (an edit to a shared
helper such as `migrations/rls.py` or `migrations/partitions.py`, say) cannot pass unnoticed.
Partitions are left out: their names and number follow the clock (the monthly and hourly partitions
made ahead at migration time); the functions that create them and their policies are in the snapshot.

Regenerate the snapshot (only when a NEW migration changes the schema on purpose):

    .venv/bin/python -m tests.schema.catalog --server postgresql://postgres@127.0.0.1:5432/postgres \
        > tests/schema/catalog.txt
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys

import psycopg

# Relations of ours: not the system's, not an extension's, not a partition (see above).
OURS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
"""
NOT_PARTITION = "NOT c.relispartition"

QUERIES: dict[str, str] = {
    "schema": """
        SELECT n.nspname, coalesce(n.nspacl::text, '') FROM pg_namespace AS n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'""",
    "extension": "SELECT extname FROM pg_extension",
    "enum": """
        SELECT t.typnamespace::regnamespace::text || '.' || t.typname,
               string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
        FROM pg_type AS t JOIN pg_enum AS e ON e.enumtypid = t.oid GROUP BY 1""",
    "domain": """
        SELECT t.typnamespace::regnamespace::text || '.' || t.typname, format_type(t.typbasetype, t.typtypmod),
               t.typnotnull::text, coalesce(t.typdefault, '')
        FROM pg_type AS t JOIN pg_namespace AS n ON n.oid = t.typnamespace
        WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')""",
    "relation": f"""
        SELECT c.oid::regclass::text, c.relkind::text, c.relrowsecurity::text, c.relforcerowsecurity::text,
               coalesce(pg_get_partkeydef(c.oid), ''), coalesce(c.reloptions::text, ''),
               coalesce(c.relacl::text, '')
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {NOT_PARTITION} AND {OURS}""",
    "column": f"""
        SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
               coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), a.attidentity::text, a.attgenerated::text,
               coalesce(co.collname, ''), coalesce(a.attacl::text, '')
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 100
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND {NOT_PARTITION} AND {OURS}""",
    "constraint": f"""
        SELECT c.oid::regclass::text, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE k.contype <> 'n' AND {NOT_PARTITION} AND {OURS}""",
    "domain_constraint": """
        SELECT k.contypid::regtype::text, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint AS k WHERE k.contypid <> 0""",
    "index": f"""
        SELECT c.oid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE {NOT_PARTITION} AND {OURS}""",
    "policy": f"""
        SELECT c.oid::regclass::text, p.polname, p.polcmd::text, p.polpermissive::text,
               (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ', ' ORDER BY 1)
                FROM unnest(p.polroles) AS r),
               coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
        FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE {NOT_PARTITION} AND {OURS}""",
    "trigger": f"""
        SELECT c.oid::regclass::text, pg_get_triggerdef(t.oid), t.tgenabled::text
        FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {NOT_PARTITION} AND {OURS}""",
    "function": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), coalesce(p.proacl::text, '')
        FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')""",
    "view": f"""
        SELECT c.oid::regclass::text, pg_get_viewdef(c.oid)
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {OURS}""",
    "sequence": """
        SELECT schemaname || '.' || sequencename, data_type::text, start_value::text, increment_by::text,
               cycle::text FROM pg_sequences""",
    "default_privilege": """
        SELECT d.defaclrole::regrole::text, coalesce(d.defaclnamespace::regnamespace::text, ''),
               d.defaclobjtype::text, d.defaclacl::text FROM pg_default_acl AS d""",
}


# PostgreSQL 17 added the MAINTAIN privilege (`m`), which every owner holds; 18 also lists each
# NOT NULL as a constraint (`contype = 'n'`, left out above: the column lines carry nullability).
# Without these the snapshot would depend on the server's version (15 here, 18 embedded).
_ACL_ITEM = re.compile(r"(=[a-zA-Z*]*)/")


def _same_across_versions(value: str) -> str:
    if value.startswith("{") and "=" in value:  # an ACL array
        return _ACL_ITEM.sub(lambda m: m.group(1).replace("m", "") + "/", value)
    return value


def catalog_lines(conn: psycopg.Connection) -> list[str]:
    """One line per catalog object (multi-line definitions keep their newlines escaped), sorted.
    The connecting user, which owns everything, is written as OWNER: any superuser may generate it."""
    owner = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
    lines: list[str] = []
    for kind, query in QUERIES.items():
        for row in conn.execute(query):
            fields = [_same_across_versions(str(value)).replace("\\", "\\\\").replace("\n", "\\n")
                      for value in row]
            lines.append(" | ".join([kind, *fields]).replace(f"{owner}=", "OWNER=").replace(f"/{owner}", "/OWNER"))
    return sorted(lines)


def snapshot(server_url: str) -> str:
    """Migrate a scratch database on `server_url`'s server to head and return its catalog text."""
    from sqlalchemy.engine import make_url

    from tests.services import migrate

    name = f"ombaro_catalog_{secrets.token_hex(4)}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
        migrate(url.render_as_string(hide_password=False))
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            return "\n".join(catalog_lines(conn)) + "\n"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="a PostgreSQL URL on the server to use (any database)")
    args = parser.parse_args()
    sys.stdout.write(snapshot(args.server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
