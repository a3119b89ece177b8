"""Every setting the engine reads from the environment, read in this one place.

With DATABASE_URL / REDIS_URL unset, development falls back to the embedded
services that `ombaro services up` started under OMBARO_VAR_DIR (see
devtools/embedded_services.py), whose URLs it wrote to var/services.json.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

# The checkout's root, or site-packages when the engine is installed from its wheel: `migrations/`
# (with alembic.ini) sits beside `ombaro/` in both.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_var_dir() -> Path:
    """./var of the checkout in development; an installed engine (wheel, container) must not write
    into site-packages, so there it is ./var of the working directory unless OMBARO_VAR_DIR says."""
    in_checkout = (PROJECT_ROOT / "setup.cfg").exists()
    return (PROJECT_ROOT if in_checkout else Path.cwd()) / "var"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and pin the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class MessagingSettings:
    """Campaigns and notifications (docs/campaigns.md). A provider whose credentials are unset is
    replaced by the development outbox; `*_host`/`*_base` point the SDKs at another server (tests)."""

    sendgrid_api_key: str = ""
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str = ""  # base64 DER of the Event Webhook's ECDSA verification key
    # A signed Event Webhook request older (or further ahead) than this is refused: a captured
    # request cannot be replayed later (docs/security.md).
    sendgrid_webhook_max_age_seconds: int = 600
    email_from: str = "OMBARO <hello@ombaro.example>"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    sms_from: str = ""  # an E.164 number or a Messaging Service SID (MG...)
    whatsapp_from: str = ""  # e.g. whatsapp:+14155238886
    fcm_credentials_file: str = ""  # a Google service-account JSON file
    fcm_base_url: str = "https://fcm.googleapis.com"
    public_base_url: str = ""  # where providers and recipients reach the API (links, callbacks)
    provider_timeout_seconds: float = 10.0
    provider_concurrency: int = 8  # parallel calls per worker process for one-message-per-request APIs
    # Requests per second per provider bucket, shared by every worker (a token bucket in Redis).
    provider_rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_RATES))
    # Unit cost of one message per channel, in rupees (the spend guard at approval).
    channel_costs: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_COSTS))
    # At most this many marketing messages per customer, channel and rolling 7 days.
    weekly_cap: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(MESSAGE_CHANNELS, 3))
    attribution_days: int = 7
    unsubscribe_secret: bytes = b""


MESSAGE_CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "push", "in_app")
DEFAULT_PROVIDER_RATES: dict[str, float] = {
    "sendgrid": 50.0, "twilio_sms": 10.0, "twilio_whatsapp": 20.0, "fcm": 100.0, "outbox": 2000.0,
}
DEFAULT_CHANNEL_COSTS: dict[str, Decimal] = {
    "email": Decimal("0.05"), "sms": Decimal("0.25"), "whatsapp": Decimal("0.80"), "push": Decimal("0.00"),
    "in_app": Decimal("0.00"),
}


BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    var_dir: Path
    # Celery's broker: Redis (REDIS_URL, the default) or RabbitMQ (amqp://...); REDIS_URL stays the
    # cache, rate-limit and metrics store either way (docs/deploying.md, "Which broker").
    broker_url: str = ""
    # `transaction` when DATABASE_URL is a PgBouncer in transaction pooling (docs/deploying.md): no
    # server-side prepared statements. DATABASE_DIRECT_URL reaches PostgreSQL itself, for what needs
    # a session of its own: the migrations and the scheduler's leader lock.
    database_pooler: str = "none"
    direct_database_url: str = ""
    timezone: str = "Asia/Kolkata"
    # A running job's lease: its worker renews it every job_heartbeat_seconds from a thread of its own
    # (progress or not); a job whose lease ran out (its worker died) is handed to another worker by the
    # relay. Lease + relay interval bound the recovery (docs/reliability.md).
    job_lease_seconds: int = 30
    job_heartbeat_seconds: float = 10
    # Seconds after which a job still `queued` although it was handed to the broker is handed again.
    relay_stale_seconds: int = 300
    relay_interval_seconds: int = 10
    max_request_bytes: int = 1_000_000
    log_level: str = "INFO"
    log_format: str = "json"  # one JSON object per line (docs/observability.md), or `text` for a terminal
    # Identity: HS256 signing secret, issuer and audience checked on every request.
    jwt_secret: str = ""
    jwt_issuer: str = "ombaro-ops"
    jwt_audience: str = "ombaro-api"
    access_token_seconds: int = 900
    refresh_token_days: int = 30
    # The console's session cookie is sent over HTTPS only (set in production behind TLS).
    secure_cookies: bool = False
    # Field encryption: key id -> 32-byte key; new values are sealed with data_key_id.
    data_keys: Mapping[str, bytes] = field(default_factory=dict)
    data_key_id: str = ""
    # Abuse limits: attempts per window, per client address and per account.
    login_limit_per_address: int = 20
    login_limit_per_account: int = 10
    register_limit_per_address: int = 10
    limit_window_seconds: int = 900
    # Payments (docs/settlements.md): `outbox` (development: no money moves) or `razorpay` (the SDK).
    payments_provider: str = "outbox"
    razorpay_key_id: str = ""
    razorpay_key_secret: str = ""
    razorpay_webhook_secret: str = ""
    razorpay_base_url: str = "https://api.razorpay.com"
    razorpay_timeout_seconds: float = 10.0
    convenience_fee: Decimal = Decimal("0.00")  # per online order, added to what the customer pays
    settlement_batch_vendors: int = 200  # vendors settled per transaction (one job per batch)
    # a run reads payments made from this many days before its period (0: no bound); older unsettled
    # ones are reported as unsettleable, never dropped silently (docs/settlements.md)
    settlement_lookback_days: int = 92

    # Campaigns and notifications: providers, rates, costs, caps (docs/campaigns.md).
    messaging: MessagingSettings = field(default_factory=lambda: MessagingSettings())

    def __post_init__(self) -> None:
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        if not self.direct_database_url:
            object.__setattr__(self, "direct_database_url", self.database_url)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def broker_is_amqp(self) -> bool:
        return broker_scheme(self.broker_url) in ("amqp", "amqps", "pyamqp")


def broker_scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def embedded_urls(var_dir: Path) -> dict[str, str]:
    """The URLs `ombaro services up` recorded, or {} when it has not run."""
    state = var_dir / "services.json"
    if not state.exists():
        return {}
    urls: dict[str, str] = json.loads(state.read_text())
    return urls


@dataclass(frozen=True)
class DatabaseSettings:
    """Only what reaching PostgreSQL needs: `ombaro migrate` and the engines take these, so they run
    without REDIS_URL, secrets or anything else the engine reads."""

    database_url: str
    direct_database_url: str
    database_pooler: str = "none"


def _missing(names: dict[str, str | None], var_dir: Path) -> ConfigError:
    return ConfigError(f"{', '.join(n for n, v in names.items() if not v)} not set and no embedded services "
                       f"recorded in {var_dir}; run `ombaro services up` or set the variables")


def load_database_settings(environ: Mapping[str, str] | None = None) -> DatabaseSettings:
    """DATABASE_URL (else the embedded server's), DATABASE_DIRECT_URL and OMBARO_DATABASE_POOLER."""
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("OMBARO_VAR_DIR") or default_var_dir()).resolve()
    database_url = env.get("DATABASE_URL") or embedded_urls(var_dir).get("database_url")
    if not database_url:
        raise _missing({"DATABASE_URL": database_url}, var_dir)
    return DatabaseSettings(
        database_url=normalise_database_url(database_url),
        direct_database_url=normalise_database_url(env.get("DATABASE_DIRECT_URL") or database_url),
        database_pooler=_choice(env, "OMBARO_DATABASE_POOLER", ("none", "transaction"), "none"),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("OMBARO_VAR_DIR") or default_var_dir()).resolve()
    embedded = embedded_urls(var_dir)
    database_url = env.get("DATABASE_URL") or embedded.get("database_url")
    redis_url = env.get("REDIS_URL") or embedded.get("redis_url")
    if not database_url or not redis_url:
        raise _missing({"DATABASE_URL": database_url, "REDIS_URL": redis_url}, var_dir)
    database = load_database_settings(env)
    broker_url = env.get("BROKER_URL") or redis_url
    if broker_scheme(broker_url) not in BROKER_SCHEMES:
        raise ConfigError(f"BROKER_URL must start with one of {', '.join(s + '://' for s in BROKER_SCHEMES)}")
    timezone = env.get("OMBARO_TIMEZONE", "Asia/Kolkata")
    try:
        ZoneInfo(timezone)
    except Exception as exc:  # ZoneInfoNotFoundError or a malformed key
        raise ConfigError(f"OMBARO_TIMEZONE={timezone!r} is not a known time zone") from exc
    lease = _int(env, "OMBARO_JOB_LEASE_SECONDS", 30)
    if lease < 2:
        raise ConfigError(f"OMBARO_JOB_LEASE_SECONDS={lease} must be at least 2 (seconds)")
    if _int(env, "OMBARO_RELAY_INTERVAL_SECONDS", 10) < 1:
        raise ConfigError("OMBARO_RELAY_INTERVAL_SECONDS must be at least 1 (second)")
    secrets = development_secrets(var_dir, env)
    data_keys, data_key_id = load_data_keys(env)
    return Settings(
        database_url=database.database_url,
        redis_url=redis_url,
        var_dir=var_dir,
        broker_url=broker_url,
        database_pooler=database.database_pooler,
        direct_database_url=database.direct_database_url,
        timezone=timezone,
        job_lease_seconds=lease,
        job_heartbeat_seconds=heartbeat_seconds(lease, _int(env, "OMBARO_JOB_HEARTBEAT_SECONDS", 10)),
        relay_stale_seconds=_int(env, "OMBARO_RELAY_STALE_SECONDS", 300),
        relay_interval_seconds=_int(env, "OMBARO_RELAY_INTERVAL_SECONDS", 10),
        max_request_bytes=_int(env, "OMBARO_MAX_REQUEST_BYTES", 1_000_000),
        log_level=env.get("OMBARO_LOG_LEVEL", "INFO"),
        log_format=_choice(env, "OMBARO_LOG_FORMAT", ("json", "text"), "json"),
        jwt_secret=env.get("OMBARO_JWT_SECRET") or secrets["jwt_secret"],
        jwt_issuer=env.get("OMBARO_JWT_ISSUER", "ombaro-ops"),
        jwt_audience=env.get("OMBARO_JWT_AUDIENCE", "ombaro-api"),
        access_token_seconds=_int(env, "OMBARO_ACCESS_TOKEN_SECONDS", 900),
        refresh_token_days=_int(env, "OMBARO_REFRESH_TOKEN_DAYS", 30),
        secure_cookies=env.get("OMBARO_SECURE_COOKIES", "").lower() in ("1", "true", "yes"),
        data_keys=data_keys,
        data_key_id=data_key_id,
        login_limit_per_address=_int(env, "OMBARO_LOGIN_LIMIT_PER_ADDRESS", 20),
        login_limit_per_account=_int(env, "OMBARO_LOGIN_LIMIT_PER_ACCOUNT", 10),
        register_limit_per_address=_int(env, "OMBARO_REGISTER_LIMIT_PER_ADDRESS", 10),
        limit_window_seconds=_int(env, "OMBARO_LIMIT_WINDOW_SECONDS", 900),
        payments_provider=_choice(env, "OMBARO_PAYMENTS_PROVIDER", ("outbox", "razorpay"), "outbox"),
        razorpay_key_id=env.get("RAZORPAY_KEY_ID", ""),
        razorpay_key_secret=env.get("RAZORPAY_KEY_SECRET", ""),
        razorpay_webhook_secret=env.get("RAZORPAY_WEBHOOK_SECRET", ""),
        razorpay_base_url=env.get("RAZORPAY_BASE_URL") or "https://api.razorpay.com",
        razorpay_timeout_seconds=float(_int(env, "RAZORPAY_TIMEOUT_SECONDS", 10)),
        convenience_fee=_money(env, "OMBARO_CONVENIENCE_FEE", "0.00"),
        settlement_batch_vendors=_int(env, "OMBARO_SETTLEMENT_BATCH_VENDORS", 200),
        settlement_lookback_days=_int(env, "OMBARO_SETTLEMENT_LOOKBACK_DAYS", 92),
        messaging=load_messaging(env, jwt_secret=env.get("OMBARO_JWT_SECRET") or secrets["jwt_secret"]),
    )


def load_data_keys(environ: Mapping[str, str] | None = None) -> tuple[dict[str, bytes], str]:
    """The keys sealing personal fields and the id new values are sealed with (OMBARO_DATA_KEYS,
    OMBARO_DATA_KEY_ID, else var/secrets.json): also for code that needs no database URL (the demo data)."""
    env = os.environ if environ is None else environ
    secrets = development_secrets(Path(env.get("OMBARO_VAR_DIR") or PROJECT_ROOT / "var").resolve(), env)
    data_keys = parse_data_keys(env.get("OMBARO_DATA_KEYS") or secrets["data_keys"])
    data_key_id = env.get("OMBARO_DATA_KEY_ID") or (env.get("OMBARO_DATA_KEYS") and next(iter(data_keys))) \
        or secrets["data_key_id"]
    if data_key_id not in data_keys:
        raise ConfigError(f"OMBARO_DATA_KEY_ID={data_key_id!r} names no key in OMBARO_DATA_KEYS")
    return data_keys, data_key_id


def heartbeat_seconds(lease_seconds: int, configured: float) -> float:
    """A lease outlives a few missed heartbeats: the heartbeat is at most a third of the lease (a
    short lease set for a test brings the heartbeat down with it)."""
    if configured <= 0:
        raise ConfigError(f"OMBARO_JOB_HEARTBEAT_SECONDS={configured} must be positive")
    return min(float(configured), lease_seconds / 3)


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
    stored: dict[str, str] = json.loads(path.read_text())
    return stored


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


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _money(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except ArithmeticError as exc:
        raise ConfigError(f"{name}={raw!r} is not an amount") from exc
    if value < 0 or value != value.quantize(Decimal("0.01")):
        raise ConfigError(f"{name}={raw!r} must be a non-negative amount in rupees with at most 2 decimals")
    return value


def load_messaging(env: Mapping[str, str], *, jwt_secret: str) -> MessagingSettings:
    rates = {**DEFAULT_PROVIDER_RATES, **{k: float(v) for k, v in _pairs(env, "OMBARO_PROVIDER_RATES").items()}}
    costs = {**DEFAULT_CHANNEL_COSTS, **{k: Decimal(v) for k, v in _pairs(env, "OMBARO_CHANNEL_COSTS").items()}}
    raw_cap = env.get("OMBARO_MARKETING_WEEKLY_CAP", "").strip()
    if raw_cap.isdigit():  # one number for every channel, or channel=N pairs
        cap = dict.fromkeys(MESSAGE_CHANNELS, int(raw_cap))
    else:
        cap = {**dict.fromkeys(MESSAGE_CHANNELS, 3),
               **{k: int(v) for k, v in _pairs(env, "OMBARO_MARKETING_WEEKLY_CAP").items()}}
    unknown = (set(costs) | set(cap)) - set(MESSAGE_CHANNELS)
    if unknown or any(r <= 0 for r in rates.values()) or any(c < 0 for c in costs.values()):
        raise ConfigError(f"OMBARO_PROVIDER_RATES / OMBARO_CHANNEL_COSTS / OMBARO_MARKETING_WEEKLY_CAP: "
                          f"unknown channels {sorted(unknown)} or a rate <= 0 or a cost < 0")
    secret = env.get("OMBARO_UNSUBSCRIBE_SECRET", "")
    # Derived from the JWT secret unless set: unsubscribe links stay valid as long as that secret.
    key = secret.encode() if secret else hmac.new(jwt_secret.encode(), b"ombaro.unsubscribe", "sha256").digest()
    return MessagingSettings(
        sendgrid_api_key=env.get("SENDGRID_API_KEY", ""),
        sendgrid_host=env.get("OMBARO_SENDGRID_HOST") or "https://api.sendgrid.com",
        sendgrid_webhook_public_key=env.get("OMBARO_SENDGRID_WEBHOOK_PUBLIC_KEY", ""),
        sendgrid_webhook_max_age_seconds=max(1, _int(env, "OMBARO_SENDGRID_WEBHOOK_MAX_AGE_SECONDS", 600)),
        email_from=env.get("OMBARO_EMAIL_FROM") or "OMBARO <hello@ombaro.example>",
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
        twilio_api_base=env.get("OMBARO_TWILIO_API_BASE") or "https://api.twilio.com",
        sms_from=env.get("OMBARO_SMS_FROM", ""),
        whatsapp_from=env.get("OMBARO_WHATSAPP_FROM", ""),
        fcm_credentials_file=env.get("OMBARO_FCM_CREDENTIALS", ""),
        fcm_base_url=env.get("OMBARO_FCM_BASE_URL") or "https://fcm.googleapis.com",
        public_base_url=(env.get("OMBARO_PUBLIC_BASE_URL") or "").rstrip("/"),
        provider_timeout_seconds=float(env.get("OMBARO_PROVIDER_TIMEOUT_SECONDS") or 10),
        provider_concurrency=max(1, _int(env, "OMBARO_PROVIDER_CONCURRENCY", 8)),
        provider_rates=rates,
        channel_costs=costs,
        weekly_cap=cap,
        attribution_days=_int(env, "OMBARO_ATTRIBUTION_DAYS", 7),
        unsubscribe_secret=key,
    )


def _pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """`a=1,b=2` -> {"a": "1", "b": "2"}."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{name}: {part!r} is not name=value")
        pairs[key.strip()] = value.strip()
    return pairs


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc
