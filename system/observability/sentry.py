"""Sentry: the spec's options, and what goes out (and what never does).

`init_sentry` uses the spec's options: dsn `SENTRY_DSN`, environment `ENVIRONMENT`, release
`GIT_COMMIT_SHA`, the FastAPI and SQLAlchemy integrations, `traces_sample_rate` 0.1,
`profiles_sample_rate` 0.1, `attach_stacktrace`, `max_breadcrumbs` 50. `before_send`:

- drops everything when `ENVIRONMENT` is `development`, and every event of `/health` requests;
- tags `user_type` (`admin` for `/admin/` paths, else `public`) and `endpoint_type` (`api`
  for `/api/` paths, else `static`), and `bgg_breaker` with the BGG breaker's state;
- scrubs `Authorization`, cookies and token-like headers and query parameters; the value of
  every password-, secret-, token- or DSN-like key at any depth (frame locals, extra, request
  data: asyncpg's connect frames hold the password under `password` in `kwargs`); and any
  configured secret (admin tokens, the BGG token, the DSN's key, the passwords in
  `DATABASE_URL` and `REDIS_URL`, the `ALERT_WEBHOOK_URL`, its path and the path's last part)
  wherever it appears, in each form it can take there: as written in the URL
  (percent-encoded), decoded (what the driver holds, e.g. in a tuple of connection
  parameters), re-encoded, and as `repr` escapes it;
  the settings themselves never render those (`SecretStr`), so frame locals hold none;
- gives every "BGG unavailable" event one fingerprint, so an outage is one Sentry issue (the
  API reports those rejections, and database-unavailable 503s, at most once a minute per
  worker and kind: an event costs milliseconds to build, and thousands of copies of one issue
  help no one);
- appends the event, as Sentry's events API shapes it, to `SENTRY_EXPORT_PATH` when set
  (this works without a DSN).

`traces_sampler` samples 10 % like `traces_sample_rate`, and never `/health` or `/metrics`.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit

import sentry_sdk
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport

from system.config import Settings
from system.observability.sentry_export import JsonLinesExport

logger = logging.getLogger(__name__)

TRACES_SAMPLE_RATE = 0.1
PROFILES_SAMPLE_RATE = 0.1
FILTERED = "[Filtered]"
UNSAMPLED_PATHS = ("/health", "/metrics")
_SENSITIVE_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
}
_SENSITIVE_KEY = re.compile(
    r"token|secret|passw(?:or)?d|pwd|api[_-]?key|auth(?!or)|credential|cookie|session|dsn", re.I
)
BGG_UNAVAILABLE_FINGERPRINT = ["bgg-unavailable"]
DATABASE_UNAVAILABLE_FINGERPRINT = ["database-unavailable"]
#: Shorter secrets are not replaced in text (too likely to be an ordinary word or number).
_MIN_SECRET_LENGTH = 4


def _forms(secret: str) -> set[str]:
    """Every spelling of `secret` an event can hold: as configured (a URL's password is
    percent-encoded there), decoded (what the driver was given), encoded again, and each as
    `repr` writes it inside quotes (frame locals are reprs)."""
    plain = {secret, unquote(secret)}
    plain |= {quote(s, safe="") for s in set(plain)} | {quote_plus(s) for s in set(plain)}
    return plain | {repr(s)[1:-1] for s in plain}


def _path_of(event: dict[str, Any]) -> str:
    url = (event.get("request") or {}).get("url")
    if url:
        return urlsplit(str(url)).path or "/"
    return str(event.get("transaction") or "")


def never_reported(path: str) -> bool:
    """Whether errors of requests to `path` are dropped (the health checks: a probe's failure
    is the probe's news, not an issue)."""
    return path == "/health" or path.startswith("/health/")


class EventFilter:
    """The `before_send` hook (a class, so tests can build it with their own settings)."""

    def __init__(
        self,
        settings: Settings,
        *,
        breaker_state: Callable[[], str] | None = None,
        export: JsonLinesExport | None = None,
    ) -> None:
        self.development = settings.environment.lower() == "development"
        self.breaker_state = breaker_state
        self.export = export
        secrets = [t.get_secret_value() for t in settings.admin_tokens]
        if settings.bgg_api_token is not None:
            secrets.append(settings.bgg_api_token.get_secret_value())
        if settings.sentry_dsn is not None:
            key = urlsplit(settings.sentry_dsn.get_secret_value()).username
            secrets.append(key or "")
        for url in (settings.database_url, settings.redis_url):
            if url is not None:
                # As written: percent-encoded; _forms adds the decoded password too.
                secrets.append(urlsplit(url.get_secret_value()).password or "")
        if settings.alert_webhook_url is not None:
            webhook = settings.alert_webhook_url.get_secret_value()
            path = urlsplit(webhook).path.rstrip("/")
            # The path is the secret (Slack: /services/T…/B…/<token>), its last part above all.
            last = path.rsplit("/", 1)[-1]
            secrets += [webhook, path, last if len(last) >= 8 else ""]
        forms = {form for secret in secrets for form in _forms(secret)}
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in forms if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if self.development:
            return None
        path = _path_of(event)
        if never_reported(path):
            return None
        # The SDK sends a dict; a stored event has [key, value] pairs.
        tags = event["tags"] = dict(event.get("tags") or {})
        tags["user_type"] = "admin" if "/admin/" in path else "public"
        tags["endpoint_type"] = "api" if path.startswith("/api/") else "static"
        if self.breaker_state is not None:
            tags["bgg_breaker"] = self.breaker_state()
        exc = (hint.get("exc_info") or (None, None, None))[1]
        if type(exc).__name__ == "BggUnavailable":
            event["fingerprint"] = list(BGG_UNAVAILABLE_FINGERPRINT)
        self._scrub_request(event)
        scrubbed = self._scrub_secrets(event)
        assert isinstance(scrubbed, dict)
        if self.export is not None:
            try:
                self.export.write(scrubbed)
            except OSError:
                logger.exception("could not append to the Sentry export")
        return scrubbed

    @staticmethod
    def _scrub_request(event: dict[str, Any]) -> None:
        request = event.get("request")
        if not isinstance(request, dict):
            return
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in _SENSITIVE_HEADERS or _SENSITIVE_KEY.search(name):
                    headers[name] = FILTERED
        request.pop("cookies", None)
        query = request.get("query_string")
        if isinstance(query, str) and query:
            pairs = [
                (k, FILTERED if _SENSITIVE_KEY.search(k) else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ]
            request["query_string"] = urlencode(pairs)

    def _scrub_secrets(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, FILTERED)
            return value
        if isinstance(value, dict):
            return {
                k: FILTERED if _is_sensitive_key(k, v) else self._scrub_secrets(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._scrub_secrets(v) for v in value]
        return value


def _is_sensitive_key(key: object, value: object) -> bool:
    # None, numbers and booleans say nothing secret (`token_count: 3`, `password: None`), and
    # an event's own structure (tags as [key, value] pairs) has no such keys.
    if value is None or isinstance(value, bool | int | float):
        return False
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


class RateLimiter:
    """Lets one event of each kind through per `interval` seconds (per worker)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def allow(self, kind: str = "") -> bool:
        """Whether an event of `kind` may go now (kinds do not hold each other back)."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            return False
        self._last[kind] = now
        return True


def traces_sampler(context: dict[str, Any]) -> float:
    """10 % of transactions, none of the health checks and scrapes."""
    scope = context.get("asgi_scope") or {}
    path = str(scope.get("path", ""))
    if any(path == p or path.startswith(p + "/") for p in UNSAMPLED_PATHS):
        return 0.0
    return TRACES_SAMPLE_RATE


def init_sentry(
    settings: Settings,
    *,
    breaker_state: Callable[[], str] | None = None,
    transport: Transport | None = None,
) -> bool:
    """Start the SDK when there is somewhere to send to (a DSN, an export file, or a test's
    transport); returns whether it started."""
    export = JsonLinesExport(settings.sentry_export_path) if settings.sentry_export_path else None
    if settings.sentry_dsn is None and export is None and transport is None:
        return False
    with warnings.catch_warnings():
        # The spec asks for profiles_sample_rate; newer SDKs prefer continuous profiling and
        # warn about it. The option still works; keep the spec's setting, without the noise.
        warnings.filterwarnings("ignore", "Transaction-based profiling", DeprecationWarning)
        _init(settings, export, breaker_state, transport)
    return True


def _init(
    settings: Settings,
    export: JsonLinesExport | None,
    breaker_state: Callable[[], str] | None,
    transport: Transport | None,
) -> None:
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None,
        environment=settings.environment,
        release=settings.git_commit_sha,
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            SqlalchemyIntegration(),
        ],
        traces_sample_rate=TRACES_SAMPLE_RATE,
        traces_sampler=traces_sampler,
        profiles_sample_rate=PROFILES_SAMPLE_RATE,
        attach_stacktrace=True,
        max_breadcrumbs=50,
        before_send=EventFilter(settings, breaker_state=breaker_state, export=export),  # type: ignore[arg-type]
        transport=transport,
    )


def close_sentry() -> None:
    """Flush what is queued and detach the client (apps in tests come and go)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=2)
        client.close()
    sentry_sdk.get_global_scope().set_client(None)
