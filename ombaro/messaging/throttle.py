"""A token bucket per provider in Redis, shared by every worker process and host.

One Lua script takes tokens atomically, with Redis's own clock (workers' clocks may differ). A
provider's 429 pauses its bucket for the Retry-After it sent, so every worker backs off together
instead of each finding out with its own 429.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from ombaro import metrics

# KEYS: bucket hash, pause key. ARGV: rate per second, burst, tokens wanted.
# Returns {granted, seconds to wait before asking again (as a string: Lua numbers become integers)}.
TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local paused_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused_until > now then
    return {0, tostring(paused_until - now)}
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens))
local wait = 0
if granted < 1 then
    granted = 0
    wait = (1 - tokens) / rate
else
    tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return {granted, tostring(wait)}
"""

# KEYS: pause key. ARGV: seconds. Extends the pause, never shortens it.
PAUSE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local until_at = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_at > current then
    redis.call('SET', KEYS[1], tostring(until_at), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return tostring(math.max(until_at, current) - now)
"""


class TokenBucket:
    """`rates`: provider -> requests per second; a burst of one second's worth (at least 1)."""

    def __init__(self, client: redis.Redis, rates: Mapping[str, float], *, prefix: str = "ombaro:bucket") -> None:
        self.client = client
        self.rates = dict(rates)
        self.prefix = prefix
        self._take = client.register_script(TAKE)
        self._pause = client.register_script(PAUSE)

    def rate(self, provider: str) -> float:
        return self.rates.get(provider, 1000.0)

    def take(self, provider: str, want: int) -> tuple[int, float]:
        """Up to `want` tokens now; (0, seconds to wait) when there is none."""
        if want <= 0:
            return 0, 0.0
        rate = self.rate(provider)
        burst = max(1.0, rate)
        granted, wait = self._take(keys=[f"{self.prefix}:{provider}", f"{self.prefix}:{provider}:pause"],
                                   args=[rate, burst, want])
        if not int(granted):
            metrics.rate_limit_wait(f"provider:{provider}", float(wait))
        return int(granted), float(wait)

    def pause(self, provider: str, seconds: float) -> float:
        """Nobody takes from `provider` for `seconds` (the provider's Retry-After)."""
        if seconds <= 0:
            return 0.0
        return float(self._pause(keys=[f"{self.prefix}:{provider}:pause"], args=[seconds]))
