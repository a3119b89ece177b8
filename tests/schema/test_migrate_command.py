"""`ombaro migrate` needs only the database (no REDIS_URL, no secrets) and reports the default
permission grants it added, counted right."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ombaro.access.permissions import DEFAULT_MATRIX
from ombaro.config import ConfigError, load_database_settings, load_settings

DEFAULT_GRANTS = sum(len(modules) for modules in DEFAULT_MATRIX.values())


def _migrate(url: str, var_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "BROKER_URL", "DATABASE_DIRECT_URL", "OMBARO_JWT_SECRET", "OMBARO_DATA_KEYS")}
    env.update(DATABASE_URL=url, OMBARO_VAR_DIR=str(var_dir))  # an empty directory: no embedded services
    return subprocess.run([sys.executable, "-m", "cli", "migrate"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_migrate_without_redis_url_adds_the_default_grants_once(make_database: Callable[[], str],
                                                                tmp_path: Path) -> None:
    url = make_database()
    first = _migrate(url, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"permission matrix: {DEFAULT_GRANTS} default grant(s) added" in first.stdout
    assert not list(tmp_path.iterdir()), "migrating wrote development secrets or services state"

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM role_permissions").fetchone() == (DEFAULT_GRANTS,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
        conn.execute("DELETE FROM role_permissions WHERE role_id = 'vendor' AND module_id = 'dispatch'")
        conn.execute("UPDATE role_permissions SET permissions = '{read}' WHERE role_id = 'customer' "
                     "AND module_id = 'bookings'")

    again = _migrate(url, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "permission matrix: 1 default grant(s) added" in again.stdout
    with psycopg.connect(plain) as conn:
        assert conn.execute("SELECT count(*) FROM role_permissions").fetchone() == (DEFAULT_GRANTS,)
        # An edited grant is never overwritten.
        assert conn.execute("SELECT permissions FROM role_permissions WHERE role_id = 'customer' "
                            "AND module_id = 'bookings'").fetchone() == (["read"],)

    assert "permission matrix: 0 default grant(s) added" in _migrate(url, tmp_path).stdout


def test_database_settings_need_only_the_database(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://u@db:5432/ombaro", "DATABASE_DIRECT_URL": "postgres://u@pg:5432/ombaro",
           "OMBARO_DATABASE_POOLER": "transaction", "OMBARO_VAR_DIR": str(tmp_path)}
    database = load_database_settings(env)
    assert database.database_url == "postgresql+psycopg://u@db:5432/ombaro"
    assert database.direct_database_url == "postgresql+psycopg://u@pg:5432/ombaro"
    assert database.database_pooler == "transaction"
    with pytest.raises(ConfigError, match=r"^REDIS_URL not set"):  # the engine as a whole still needs it
        load_settings(env)
    with pytest.raises(ConfigError, match=r"^DATABASE_URL not set"):
        load_database_settings({"OMBARO_VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="OMBARO_DATABASE_POOLER"):
        load_database_settings({**env, "OMBARO_DATABASE_POOLER": "session"})
