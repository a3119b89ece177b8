"""/readyz reports the scheduler's heartbeat beside its checks: stale or absent is reported, and
does not take the API out of rotation."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis
from sqlalchemy import Engine

from beat.scheduler import Beat
from ombaro import metrics
from tests.helpers import wait_until
from tests.observability.scrape import metric


def _forget_schedulers(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.delete(metrics.HEARTBEATS_KEY)
    return client


def test_absent_and_stale_scheduler_reported_without_failing_readiness(anon_client: Any, redis_url: str) -> None:
    client = _forget_schedulers(redis_url)
    absent = anon_client.get("/readyz")
    assert absent.status_code == 200
    assert absent.json["checks"] == {"database": "ok", "broker": "ok"}
    assert absent.json["scheduler"] == {"status": "absent"}

    client.hset(metrics.HEARTBEATS_KEY, "old-host:1", json.dumps({"ts": time.time() - 120, "role": "leader"}))
    stale = anon_client.get("/readyz")
    assert stale.status_code == 200 and stale.json["status"] == "ready"
    assert stale.json["scheduler"]["status"] == "stale"
    assert stale.json["scheduler"]["age_seconds"] >= 120
    assert metric(anon_client, "ombaro_scheduler_heartbeat_age_seconds", role="leader") >= 120


def test_running_scheduler_heartbeat_is_fresh(
    anon_client: Any, engine: Engine, redis_url: str, clean_jobs: None,
) -> None:
    _forget_schedulers(redis_url)
    stop = threading.Event()
    beat = Beat(engine, lambda *_: None, leader_lock=False, heartbeat_seconds=0.2, reload_seconds=0.5)
    thread = threading.Thread(target=beat.run, args=(stop,), daemon=True)
    thread.start()
    try:
        status = wait_until(lambda: (s := anon_client.get("/readyz").json["scheduler"])["status"] == "ok" and s,
                            timeout=15, what="a fresh leader heartbeat")
        assert status["leader"] is True and status["age_seconds"] < 5
        assert metric(anon_client, "ombaro_scheduler_heartbeat_age_seconds", role="leader") < 5
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
