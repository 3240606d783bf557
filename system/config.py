"""The service's configuration: one pydantic-settings object, read from the environment.

Every name here is part of the public contract (README, `../shared/CONTRACTS.md`): users,
deploy files and the chaos harness set these variables, so rename nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from system.tokens import HASH_PREFIX, parse_hashed_token

DEFAULT_IMAGE_HOSTS = ("cf.geekdo-images.com", "cf.geekdo-static.com")


@dataclass(frozen=True, slots=True)
class AllowedHost:
    """One `IMAGE_ALLOWED_HOSTS` entry: a host and the port(s) it may be fetched on."""

    host: str
    #: None: the default port of the URL's scheme only; "*": any port.
    port: int | Literal["*"] | None = None

    def allows(self, host: str, port: int | None, scheme: str) -> bool:
        """Whether a URL with this host, port (None: not given) and scheme may be fetched."""
        if host != self.host:
            return False
        if self.port == "*":
            return True
        default = DEFAULT_PORTS.get(scheme)
        return (port or default) == (self.port or default)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


#: The port a URL without one connects to.
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_allowed_host(entry: str) -> AllowedHost:
    """`host`, `host:port`, `host:*`, `[v6]`, `[v6]:port` or a bare IPv6 address, lower-cased.

    Raises ValueError naming the entry when it is none of these.
    """
    text = entry.strip().lower()
    host, port = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"IMAGE_ALLOWED_HOSTS entry {entry!r}: expected [ipv6]:port")
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or any(c in host for c in "/@?#[] "):
        raise ValueError(f"IMAGE_ALLOWED_HOSTS entry {entry!r}: not a host name")
    if port in ("", "*"):
        return AllowedHost(host, "*" if port else None)
    if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"IMAGE_ALLOWED_HOSTS entry {entry!r}: port must be 1-65535 or *")
    return AllowedHost(host, int(port))


def _default_database_url() -> SecretStr:
    return SecretStr(f"sqlite+aiosqlite:///{Path('var') / 'bgg.db'}")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment (and an optional `.env` file)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Storage. The secret settings (URLs that hold passwords or secret paths, tokens, the DSN)
    # are SecretStr: no repr, str, dump or error report of the settings shows them.
    database_url: SecretStr = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    auto_migrate: bool = Field(True, description="Run Alembic upgrade to head at start-up.")
    database_connect_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds to wait for a connection (SQLite: for a lock) before giving up.",
    )
    public_cache_max_age: int = Field(
        0,
        ge=0,
        le=86_400,
        description="Seconds a shared cache may serve a public read without asking (0: it "
        "revalidates every time, `no-cache`; N: `max-age=N, stale-while-revalidate=N`).",
    )
    read_cache_entries: int = Field(
        4096,
        ge=0,
        le=1_000_000,
        description="Public read answers each worker keeps for the current catalogue version "
        "(also bounded to 32 MB); 0 keeps none: every read reads the version and the rows.",
    )

    # Identity and deployment
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated bearer tokens for /api/admin; 'sha256:<hex>' holds a hash.",
    )
    environment: str = Field("production", description="production, staging, development, ...")
    git_commit_sha: str = Field("unknown", description="Release identifier sent to Sentry.")

    # Error reporting
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; unset disables sending.")
    sentry_export_path: Path | None = Field(
        None, description="Also append every reported event to this JSON-lines file."
    )

    # BoardGameGeek
    bgg_base_url: str = Field("https://boardgamegeek.com/xmlapi2")
    bgg_api_token: SecretStr | None = Field(None, description="Bearer token for the BGG API.")
    bgg_connect_timeout: float = Field(3.0, gt=0)
    bgg_read_timeout: float = Field(10.0, gt=0)
    bgg_request_timeout: float = Field(
        10.0, gt=0, description="Total time one upstream request may take (all phases)."
    )
    bgg_retry_attempts: int = Field(3, ge=1, le=10)
    bgg_retry_max_wait: float = Field(
        10.0, ge=0, description="Cap of one full-jitter exponential wait between attempts."
    )
    bgg_retry_initial_wait: float = Field(1.0, ge=0)
    bgg_deadline_seconds: float = Field(
        15.0, gt=0, description="No import takes longer than this, retries and waits included."
    )
    bgg_retry_budget_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Retries may add at most this share to upstream traffic. 0.5 is twice "
        "what a steady 20 % flaky BGG needs with 3 attempts (0.2 + 0.2^2 = 0.24 retries per "
        "import), so such flakiness is absorbed at any import rate, while a dead BGG still "
        "gets about 1.5x the first attempts, not 3x.",
    )
    bgg_retry_budget_min_per_second: float = Field(
        2.0, ge=0, description="...plus this many retries a second, so a trickle is retried."
    )
    bgg_breaker_fail_max: int = Field(5, ge=1)
    bgg_breaker_reset_timeout: float = Field(60.0, gt=0)
    bgg_max_id: int = Field(10_000_000, ge=1, description="Largest bgg_id accepted for import.")
    bulk_import_max: int = Field(
        500, ge=1, le=100_000, description="Most BGG ids one bulk import request may name."
    )
    bgg_recovery_probe_id: int = Field(
        13,
        ge=0,
        description="BGG thing fetched (once, no retries) every RECOVERY_CHECK_SECONDS while "
        "the BGG breaker is open past its reset timeout, so it closes without user traffic; "
        "an unknown id counts as an answer. 0 turns the probe off.",
    )
    bgg_parse_processes: int = Field(
        1,
        ge=0,
        le=8,
        description="Child processes parsing BGG answers (0: parse in a thread of the worker).",
    )

    # Shared breaker state
    redis_url: SecretStr | None = Field(None, description="Share breaker state between workers.")
    redis_timeout: float = Field(
        0.25,
        gt=0,
        description="Seconds per Redis operation (loopback answers in well under 1 ms, but a "
        "loaded machine can stall for tens of ms; a timeout falls back to local state).",
    )
    redis_namespace: str = Field(
        "bgg-reliability", min_length=1, description="Prefix of every Redis key."
    )

    # Thumbnails (background tasks)
    thumbnail_dir: Path = Field(Path("var/thumbnails"))
    thumbnail_max_bytes: int = Field(5 * 1024 * 1024, ge=1)
    thumbnail_timeout: float = Field(10.0, gt=0)
    thumbnail_retry_attempts: int = Field(3, ge=1, le=10)
    thumbnail_retry_min_wait: float = Field(2.0, ge=0)
    thumbnail_retry_max_wait: float = Field(10.0, ge=0)
    image_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_HOSTS),
        description="Hosts thumbnails may be downloaded from (comma-separated), each `host` "
        "(only the scheme's default port: 443 for https, 80 for http), `host:port` (only that "
        "port) or `host:*` (any port). IPv6: `[::1]:8080`.",
    )
    cdn_breaker_fail_max: int = Field(5, ge=1)
    cdn_breaker_reset_timeout: float = Field(60.0, gt=0)
    background_concurrency: int = Field(
        4, ge=1, description="Background jobs one process runs at once (its worker slots)."
    )
    background_drain_seconds: float = Field(10.0, ge=0)
    background_workers_in_process: bool = Field(
        True,
        description="Run background workers inside `serve`. false: an API-only replica that "
        "queues jobs and leaves them to `python -m system worker` processes.",
    )
    job_lease_seconds: float = Field(
        30.0, ge=1, description="How long a claimed job is held before another worker may take it."
    )
    job_lease_margin_seconds: float = Field(
        5.0,
        ge=0,
        description="A worker stops a job it could not renew this long before its lease ends.",
    )
    job_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle worker looks for due jobs (it is also woken)."
    )
    job_retention_days: float = Field(
        7.0,
        gt=0,
        description="Finished jobs are deleted after this many days (failed ones only once "
        "their failure is resolved); their run rows stay.",
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Claims of one job (its worker died holding it) before it fails."
    )
    job_metrics_seconds: float = Field(
        5.0, gt=0, description="How often the API refreshes the job gauges from the job table."
    )
    spool_path: Path = Field(Path("var/failure-spool.jsonl"))
    spool_replay_seconds: float = Field(
        5.0, gt=0, description="How often spooled task records are replayed while any wait."
    )
    record_failures: bool = Field(
        True, description="Only for proving the chaos harness catches lost records."
    )

    # Recovery
    auto_retry_max: int = Field(
        3, ge=0, description="Automatic retries of one failure after outages, at most."
    )
    auto_retry_lookback_seconds: float = Field(
        3600,
        gt=0,
        description="Failures recorded this long before a breaker opened (or before now, if "
        "unknown) are retried too when it closes.",
    )
    recovery_check_seconds: float = Field(
        5.0, gt=0, description="How often an open breaker with failures waiting is probed."
    )

    # Alerts (in the service itself, for those without Prometheus)
    alert_webhook_url: SecretStr | None = Field(None, description="Slack-compatible webhook URL.")
    alert_check_interval_seconds: float = Field(5.0, gt=0)
    alert_error_rate_threshold: float = Field(0.01, ge=0, le=1)
    alert_error_rate_window_seconds: float = Field(300, gt=0)
    alert_error_rate_min_requests: int = Field(20, ge=1)
    alert_breaker_open_seconds: float = Field(300, ge=0)
    alert_unresolved_threshold: int = Field(50, ge=0)
    alert_job_backlog_seconds: float = Field(
        300, ge=0, description="Job backlog alert: the oldest due queued job waited longer."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("admin_tokens", "image_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("image_allowed_hosts")
    @classmethod
    def _host_entries_well_formed(cls, value: list[str]) -> list[str]:
        return [str(parse_allowed_host(entry)) for entry in value]

    @field_validator("admin_tokens")
    @classmethod
    def _hashed_tokens_well_formed(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            raw = token.get_secret_value()
            if raw.startswith(HASH_PREFIX):
                parse_hashed_token(raw)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_driver(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        try:
            url = make_url(value)
        except ValueError as exc:
            # A typo such as a non-numeric port must stop the start here with one line, not
            # crash the lifespan later with a traceback.
            # SQLAlchemy's message may quote the URL, password included: say which part.
            problem = "the port is not a number" if "int()" in str(exc) else "cannot be parsed"
            raise ValueError(f"DATABASE_URL is not a valid URL: {problem}") from None
        if url.port is not None and not 0 < url.port <= 65535:
            raise ValueError(f"DATABASE_URL port out of range 1-65535: {url.port}")
        if url.get_backend_name() == "postgresql" and not url.database:
            raise ValueError("DATABASE_URL names no database (postgresql+asyncpg://.../NAME)")
        return secret

    @field_validator("bgg_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("BGG_BASE_URL must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _waits_in_order(self) -> Settings:
        if self.thumbnail_retry_min_wait > self.thumbnail_retry_max_wait:
            raise ValueError("THUMBNAIL_RETRY_MIN_WAIT is above THUMBNAIL_RETRY_MAX_WAIT")
        if self.job_lease_margin_seconds * 2 >= self.job_lease_seconds:
            # Renewals come every third of the lease: the margin must leave room for two.
            raise ValueError("JOB_LEASE_MARGIN_SECONDS must be under half of JOB_LEASE_SECONDS")
        return self
