"""Every setting the engine reads from the environment, read in this one place.

With DATABASE_URL / REDIS_URL unset, development falls back to the embedded
services that `ombaro services up` started under OMBARO_VAR_DIR (see
ombaro/services.py), whose URLs it wrote to var/services.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and pin the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    var_dir: Path
    timezone: str = "Asia/Kolkata"
    # Seconds a claimed job may run without reporting progress before another worker may take it over.
    job_lease_seconds: int = 900
    # Seconds after which a job still `queued` although it was handed to the broker is handed again.
    relay_stale_seconds: int = 300
    relay_interval_seconds: int = 10
    max_request_bytes: int = 1_000_000
    log_level: str = "INFO"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def embedded_urls(var_dir: Path) -> dict[str, str]:
    """The URLs `ombaro services up` recorded, or {} when it has not run."""
    state = var_dir / "services.json"
    if not state.exists():
        return {}
    return json.loads(state.read_text())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("OMBARO_VAR_DIR") or PROJECT_ROOT / "var").resolve()
    embedded = embedded_urls(var_dir)
    database_url = env.get("DATABASE_URL") or embedded.get("database_url")
    redis_url = env.get("REDIS_URL") or embedded.get("redis_url")
    if not database_url or not redis_url:
        missing = [n for n, v in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)) if not v]
        raise ConfigError(
            f"{', '.join(missing)} not set and no embedded services recorded in {var_dir}; "
            "run `ombaro services up` or set the variables"
        )
    timezone = env.get("OMBARO_TIMEZONE", "Asia/Kolkata")
    try:
        ZoneInfo(timezone)
    except Exception as exc:  # ZoneInfoNotFoundError or a malformed key
        raise ConfigError(f"OMBARO_TIMEZONE={timezone!r} is not a known time zone") from exc
    return Settings(
        database_url=normalise_database_url(database_url),
        redis_url=redis_url,
        var_dir=var_dir,
        timezone=timezone,
        job_lease_seconds=_int(env, "OMBARO_JOB_LEASE_SECONDS", 900),
        relay_stale_seconds=_int(env, "OMBARO_RELAY_STALE_SECONDS", 300),
        relay_interval_seconds=_int(env, "OMBARO_RELAY_INTERVAL_SECONDS", 10),
        max_request_bytes=_int(env, "OMBARO_MAX_REQUEST_BYTES", 1_000_000),
        log_level=env.get("OMBARO_LOG_LEVEL", "INFO"),
    )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc
