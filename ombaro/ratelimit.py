"""Fixed-window attempt counters in Redis, shared by every web process."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from ombaro import metrics


@dataclass(frozen=True)
class Limited(Exception):
    """Too many attempts; `retry_after` seconds until the window ends."""

    what: str
    retry_after: int

    def __str__(self) -> str:
        return f"too many {self.what}; try again in {self.retry_after} seconds"


def hit(client: redis.Redis, key: str, *, limit: int, window: int, what: str) -> None:
    """Count one attempt under `key`; raise Limited once more than `limit` fall in one window."""
    full_key = f"ratelimit:{key}"
    with client.pipeline() as pipe:
        pipe.set(full_key, 0, ex=window, nx=True)  # starts the window (Redis 6 has no EXPIRE NX)
        pipe.incr(full_key)
        pipe.ttl(full_key)
        _, count, ttl = pipe.execute()
    if count > limit:
        retry_after = max(1, int(ttl))
        # The limiter's name only ("login:ip"), never the address or account it counts.
        metrics.rate_limit_wait("api:" + ":".join(key.split(":")[:2]), retry_after)
        raise Limited(what, retry_after)


def clear(client: redis.Redis, key: str) -> None:
    client.delete(f"ratelimit:{key}")
