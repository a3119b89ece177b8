"""Every setting the engine reads from the environment, read in this one place.

With DATABASE_URL / REDIS_URL unset, development falls back to the embedded
services that `ombaro services up` started under OMBARO_VAR_DIR (see
ombaro/services.py), whose URLs it wrote to var/services.json.
"""

from __future__ import annotations

import base64
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
    # Identity: HS256 signing secret, issuer and audience checked on every request.
    jwt_secret: str = ""
    jwt_issuer: str = "ombaro-ops"
    jwt_audience: str = "ombaro-api"
    access_token_seconds: int = 900
    refresh_token_days: int = 30
    # Field encryption: key id -> 32-byte key; new values are sealed with data_key_id.
    data_keys: Mapping[str, bytes] = field(default_factory=dict)
    data_key_id: str = ""
    # Abuse limits: attempts per window, per client address and per account.
    login_limit_per_address: int = 20
    login_limit_per_account: int = 10
    register_limit_per_address: int = 10
    limit_window_seconds: int = 900

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
    secrets = development_secrets(var_dir, env)
    data_keys = parse_data_keys(env.get("OMBARO_DATA_KEYS") or secrets["data_keys"])
    data_key_id = env.get("OMBARO_DATA_KEY_ID") or (env.get("OMBARO_DATA_KEYS") and next(iter(data_keys))) \
        or secrets["data_key_id"]
    if data_key_id not in data_keys:
        raise ConfigError(f"OMBARO_DATA_KEY_ID={data_key_id!r} names no key in OMBARO_DATA_KEYS")
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
        jwt_secret=env.get("OMBARO_JWT_SECRET") or secrets["jwt_secret"],
        jwt_issuer=env.get("OMBARO_JWT_ISSUER", "ombaro-ops"),
        jwt_audience=env.get("OMBARO_JWT_AUDIENCE", "ombaro-api"),
        access_token_seconds=_int(env, "OMBARO_ACCESS_TOKEN_SECONDS", 900),
        refresh_token_days=_int(env, "OMBARO_REFRESH_TOKEN_DAYS", 30),
        data_keys=data_keys,
        data_key_id=data_key_id,
        login_limit_per_address=_int(env, "OMBARO_LOGIN_LIMIT_PER_ADDRESS", 20),
        login_limit_per_account=_int(env, "OMBARO_LOGIN_LIMIT_PER_ACCOUNT", 10),
        register_limit_per_address=_int(env, "OMBARO_REGISTER_LIMIT_PER_ADDRESS", 10),
        limit_window_seconds=_int(env, "OMBARO_LIMIT_WINDOW_SECONDS", 900),
    )


def development_secrets(var_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Secrets for development when the environment sets none: generated once into
    var/secrets.json (mode 0600) so tokens and encrypted fields survive restarts. Production sets
    OMBARO_JWT_SECRET and OMBARO_DATA_KEYS; with OMBARO_REQUIRE_SECRETS=1 their absence is an error."""
    if env.get("OMBARO_JWT_SECRET") and env.get("OMBARO_DATA_KEYS"):
        return {"jwt_secret": "", "data_keys": "", "data_key_id": ""}
    if env.get("OMBARO_REQUIRE_SECRETS") == "1":
        raise ConfigError("OMBARO_JWT_SECRET and OMBARO_DATA_KEYS must be set (OMBARO_REQUIRE_SECRETS=1)")
    path = var_dir / "secrets.json"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fresh = {"jwt_secret": base64.urlsafe_b64encode(os.urandom(48)).decode(),
                 "data_keys": "dev1:" + base64.b64encode(os.urandom(32)).decode(), "data_key_id": "dev1"}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(fresh, handle)
    return json.loads(path.read_text())


def parse_data_keys(raw: str) -> dict[str, bytes]:
    """`kid:base64key[,kid:base64key...]`; every key must be 32 bytes (AES-256)."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        kid, _, encoded = part.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise ConfigError(f"OMBARO_DATA_KEYS: key {kid!r} is not base64") from exc
        if not kid or len(key) != 32:
            raise ConfigError(f"OMBARO_DATA_KEYS: key {kid!r} must be a name and 32 bytes of base64")
        keys[kid] = key
    if not keys:
        raise ConfigError("OMBARO_DATA_KEYS holds no key")
    return keys


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc
