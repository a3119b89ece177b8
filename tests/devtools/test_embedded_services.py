"""`ombaro services up/down`: embedded PostgreSQL and Redis that keep their data across restarts."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import redis

from devtools import embedded_services as services


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


def test_a_recorded_port_taken_by_another_program_is_given_up(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    try:
        urls = services.up(var_dir)
        port = int(urls.database_url.rsplit(":", 1)[1].split("/")[0])
        services.down(var_dir)
        with socket.socket() as squatter:  # something else listens there now
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old one may linger in TIME_WAIT
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = services.up(var_dir)
            assert moved.database_url != urls.database_url
            with psycopg.connect(moved.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        services.down(var_dir)
