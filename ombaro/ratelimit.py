"""Fixed-window attempt counters in Redis, shared by every web process.

`hit` counts an attempt and refuses past the limit; `check` refuses once `count` (failures only,
counted after the fact) reached it; `remember`/`is_member` keep a set with an expiry (the
addresses an account signed in from)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from ombaro import metrics


@dataclass(eq=False)  # not frozen: raising sets __traceback__ (e.g. through a context manager)
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
        _refuse(key, what, ttl)


def _refuse(key: str, what: str, ttl: int) -> None:
    retry_after = max(1, int(ttl))
    # The limiter's name only ("login:ip"), never the address or account it counts.
    metrics.rate_limit_wait("api:" + ":".join(key.split(":")[:2]), retry_after)
    raise Limited(what, retry_after)


def check(client: redis.Redis, key: str, *, limit: int, what: str) -> None:
    """Raise Limited if `limit` failures under `key` fall in the current window (counts nothing)."""
    full_key = f"ratelimit:{key}"
    with client.pipeline() as pipe:
        pipe.get(full_key)
        pipe.ttl(full_key)
        count, ttl = pipe.execute()
    if count is not None and int(count) >= limit:
        _refuse(key, what, ttl)


def count(client: redis.Redis, key: str, *, window: int) -> int:
    """Count one failure under `key` (the window starts with the first)."""
    full_key = f"ratelimit:{key}"
    with client.pipeline() as pipe:
        pipe.set(full_key, 0, ex=window, nx=True)
        pipe.incr(full_key)
        _, counted = pipe.execute()
    return int(counted)


def clear(client: redis.Redis, key: str) -> None:
    client.delete(f"ratelimit:{key}")


def remember(client: redis.Redis, key: str, member: str, *, seconds: int) -> None:
    """Add `member` to the set under `key`; the set lives `seconds` after its last addition."""
    full_key = f"ratelimit:{key}"
    with client.pipeline() as pipe:
        pipe.sadd(full_key, member)
        pipe.expire(full_key, seconds)
        pipe.execute()


def is_member(client: redis.Redis, key: str, member: str) -> bool:
    return bool(client.sismember(f"ratelimit:{key}", member))
