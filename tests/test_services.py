"""`ombaro services up/down`: embedded PostgreSQL and Redis that keep their data across restarts."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from ombaro import services


def test_embedded_services_are_idempotent_and_keep_data_across_restart(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    try:
        urls = services.up(var_dir)
        assert services.up(var_dir) == urls  # a second `up` finds them running and changes nothing
        plain = urls.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('survives')")
        redis.Redis.from_url(urls.redis_url).set("kept", "survives")

        services.down(var_dir)
        state = services.status(var_dir)
        assert (state["postgres_running"], state["redis_running"]) == (False, False)

        assert services.up(var_dir) == urls
        with psycopg.connect(plain) as conn:
            assert conn.execute("SELECT note FROM kept").fetchone() == ("survives",)
        assert redis.Redis.from_url(urls.redis_url).get("kept") == b"survives"
        assert redis.Redis.from_url(urls.redis_url).config_get("maxmemory-policy") == {
            "maxmemory-policy": "noeviction"}
    finally:
        services.down(var_dir)
