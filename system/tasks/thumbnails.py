"""Thumbnail downloads: the spec's retry policy, the Image CDN breaker, safe files.

Retry policy (the spec's): 3 attempts, exponential waits of 2-10 s (multiplier 1), retried
only on `httpx.TimeoutException` and `httpx.NetworkError`, a WARNING before each wait, the
last error re-raised. Each attempt runs inside the "Image CDN" breaker, so a CDN outage opens
that breaker and not the BGG one.

Files are named by the service (`<game_id>-<hash of the URL>.<ext from the content type>`),
streamed to a temporary file in the same folder and renamed into place, so a reader never
sees half an image and a refused download leaves nothing behind. The body must start with the
magic bytes of the type the CDN declared (an `image/png` answer holding HTML is refused as
`ContentTypeMismatch`). Only http(s) URLs without credentials, on a host and port that
`IMAGE_ALLOWED_HOSTS` allows (a bare host: the scheme's default port only), are fetched; a
host name that resolves to a private, loopback or
link-local address is refused, unless the allow-list names that address itself (the chaos
harness allow-lists its loopback CDN as `127.0.0.1`). The name is resolved once per attempt
and the connection goes to the address that was checked (`Host` header and TLS SNI keep the
name), so a DNS answer that changes between the check and the connect (rebinding) cannot
reach a private address. A failed lookup is a network error: retried like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import Field as PydanticField
from sqlalchemy.ext.asyncio import AsyncSession

from system.clock import utcnow
from system.config import parse_allowed_host
from system.db.jobs import ClaimedJob, Enqueued, enqueue
from system.db.tasks import TaskRecord, Trigger
from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError
from system.resilience.retry import RetryPolicy, Sleep, build_retrying
from system.tasks.pool import InvalidJobPayload
from system.tasks.recording import Recorded, TaskRecorder

logger = logging.getLogger(__name__)

TASK_TYPE = "thumbnail_download"

CONTENT_TYPES = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
}

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Enough of the body to tell every stored type apart (WebP's and AVIF's marks end at byte 12).
_SNIFF_BYTES = 12


def sniff_image(head: bytes) -> str | None:
    """The file extension the first bytes of an image say it is ("png", ...), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def _check_magic(head: bytes, content_type: str) -> None:
    found = sniff_image(head)
    if found != CONTENT_TYPES[content_type]:
        what = f"a {found.upper()} image" if found else f"not an image (starts {head[:8]!r})"
        raise ContentTypeMismatch(f"Refused body: declared {content_type}, but it is {what}")


class ThumbnailError(Exception):
    """A download that failed for good. `error_type` is what the failure row records."""

    error_type = "ThumbnailError"
    #: Whether trying again later may work (outages) or not (a refused URL).
    transient = False

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class RefusedUrl(ThumbnailError):
    """Not an http(s) URL on an allowed host, or it resolves to a private address."""

    error_type = "RefusedUrl"


class UnsupportedContentType(ThumbnailError):
    """The CDN answered with something that is not an image."""

    error_type = "UnsupportedContentType"


class ContentTypeMismatch(ThumbnailError):
    """The body does not start like the image type the CDN declared (HTML sent as PNG, ...)."""

    error_type = "ContentTypeMismatch"


class ThumbnailTooLarge(ThumbnailError):
    """The body is larger than `THUMBNAIL_MAX_BYTES`."""

    error_type = "ThumbnailTooLarge"


class ImageNotFound(ThumbnailError):
    """404/410: the image is gone."""

    error_type = "ImageNotFound"


class CdnHttpError(ThumbnailError):
    """An unexpected 4xx: asking again will not help."""

    error_type = "CdnHttpError"

    def __init__(self, message: str, *, status: int, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.status = status


class CdnServerError(CdnHttpError):
    """5xx or 429: the CDN is failing (counted by its breaker), try again later."""

    error_type = "CdnServerError"
    transient = True


class CdnUnavailable(ThumbnailError):
    """The Image CDN breaker is open: no request was made."""

    error_type = "CircuitBreakerOpen"
    transient = True


class DNSError(httpx.ConnectError):
    """The CDN's host name did not resolve: a network error, retried as the spec's are."""


class ThumbnailNetworkError(ThumbnailError):
    """Timeouts and network errors that outlasted the retries."""

    transient = True

    def __init__(self, message: str, *, error_type: str, attempts: int) -> None:
        super().__init__(message, attempts=attempts)
        self.error_type = error_type


@dataclass(slots=True)
class Progress:
    """How far a download has got: the attempt under way (0 before the first)."""

    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request for `url` that connects to `connect_to`, an address already checked."""

    url: str
    connect_to: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A stored thumbnail."""

    path: Path
    attempts: int
    bytes: int


async def resolve_host(host: str, port: int) -> Sequence[str]:
    """The addresses `host` resolves to (the default resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    return [str(info[4][0]) for info in infos]


def thumbnail_name(game_id: int, url: str, content_type: str) -> str:
    """The file name the service gives a thumbnail: never derived from input characters."""
    return f"{game_id}-{_url_digest(url)}.{CONTENT_TYPES[content_type]}"


def _url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class ThumbnailDownloader:
    """Downloads one image to `directory` under the service's rules."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        breaker: AsyncCircuitBreaker,
        directory: Path,
        max_bytes: int,
        allowed_hosts: Sequence[str],
        policy: RetryPolicy,
        attempt_timeout: float,
        sleep: Sleep = asyncio.sleep,
        resolver: Resolver = resolve_host,
    ) -> None:
        self.http = http
        self.breaker = breaker
        self.directory = directory
        self.max_bytes = max_bytes
        self.allowed_hosts = [parse_allowed_host(entry) for entry in allowed_hosts]
        self.policy = policy
        self.attempt_timeout = attempt_timeout
        self._sleep = sleep
        self._resolve = resolver

    async def download(
        self, game_id: int, url: str, *, progress: Progress | None = None
    ) -> Downloaded:
        """Fetch `url` for `game_id`; raises a `ThumbnailError` when it cannot.

        `progress.attempts` follows the attempt under way, for a caller that is cancelled
        mid-download and must still record how many attempts were made.
        """
        self._check_url(url)
        retrying = build_retrying(
            self.policy,
            retryable=lambda exc: isinstance(exc, httpx.TimeoutException | httpx.NetworkError),
            logger=logger,
            what=f"thumbnail download for game {game_id}",
            sleep=self._sleep,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if progress is not None:
                        progress.attempts = attempts
                    return await self._attempt(game_id, url, attempts)
        except (httpx.TimeoutException, httpx.NetworkError) as exc:
            raise ThumbnailNetworkError(
                f"Network error: {_describe(exc)}", error_type=type(exc).__name__, attempts=attempts
            ) from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise RefusedUrl(f"Refused URL scheme {parts.scheme!r}: only http and https")
        if "@" in parts.netloc:
            # httpx would send them as Basic auth to the CDN; they are never anyone's to send.
            raise RefusedUrl("Refused URL with credentials (user:password@host)")
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            raise RefusedUrl(f"Refused URL: invalid port in {parts.netloc!r}") from None
        if not host or not any(a.allows(host, port, parts.scheme) for a in self.allowed_hosts):
            where = f"{host!r}" if port is None else f"{host!r} port {port}"
            raise RefusedUrl(f"Refused host {where}: not in IMAGE_ALLOWED_HOSTS")

    async def _pin(self, url: str) -> Pinned:
        """Where to connect for `url`: a checked address, the name kept for Host and SNI."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            # An address the operator allow-listed as such is trusted as it is.
            return Pinned(url, httpx.URL(url), {}, {})
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise DNSError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise DNSError(f"cannot resolve {host}: no address")
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global:
                raise RefusedUrl(f"Refused host {host!r}: it resolves to non-public {ip}")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        connect_to = httpx.URL(url).copy_with(host=addresses[0])
        return Pinned(url, connect_to, {"Host": netloc}, extensions)

    async def _attempt(self, game_id: int, url: str, attempt: int) -> Downloaded:
        refused: ThumbnailError | None = None
        stored: Downloaded | None = None
        # Resolved outside the breaker: a refused address is not a CDN answer, good or bad.
        try:
            async with asyncio.timeout(self.attempt_timeout):
                pinned = await self._pin(url)
        except TimeoutError as exc:
            raise DNSError(f"cannot resolve {urlsplit(url).hostname}: timed out") from exc
        except RefusedUrl as exc:
            exc.attempts = attempt
            raise
        try:
            async with self.breaker.guard():
                try:
                    async with asyncio.timeout(self.attempt_timeout):
                        stored = await self._fetch(game_id, pinned, attempt)
                except TimeoutError as exc:
                    # The whole attempt (connect, headers, body) ran out of time.
                    raise httpx.ReadTimeout("thumbnail attempt timed out") from exc
                except CdnServerError as exc:
                    exc.attempts = attempt
                    raise  # the CDN is failing: its breaker must count it
                except ThumbnailError as exc:
                    refused = exc  # the CDN answered; the answer is just not usable
        except CircuitOpenError as exc:
            raise CdnUnavailable(
                f"Image CDN unavailable: circuit breaker open, retry in {exc.retry_after:.0f} s",
                attempts=attempt,
            ) from None
        if refused is not None:
            refused.attempts = attempt
            raise refused
        assert stored is not None
        return stored

    async def _fetch(self, game_id: int, pinned: Pinned, attempt: int) -> Downloaded:
        async with self.http.stream(
            "GET", pinned.connect_to, headers=pinned.headers, extensions=pinned.extensions
        ) as response:
            if response.status_code in (404, 410):
                raise ImageNotFound(f"Image not found ({response.status_code})")
            if response.status_code != 200:
                error = (
                    CdnServerError
                    if response.status_code in (429,) or (response.status_code >= 500)
                    else CdnHttpError
                )
                raise error(f"CDN answered {response.status_code}", status=response.status_code)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type not in CONTENT_TYPES:
                raise UnsupportedContentType(
                    f"Refused content type {content_type or 'missing'!r}: not an image"
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise ThumbnailTooLarge(
                    f"Image is {declared} bytes, more than THUMBNAIL_MAX_BYTES={self.max_bytes}"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            target = self.directory / thumbnail_name(game_id, pinned.url, content_type)
            size = await self._stream_to(response, target, content_type)
        return Downloaded(path=target, attempts=attempt, bytes=size)

    async def _stream_to(self, response: httpx.Response, target: Path, content_type: str) -> int:
        handle, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".part-", suffix=".tmp")
        tmp = Path(tmp_name)
        size = 0
        head = b""
        try:
            with os.fdopen(handle, "wb") as out:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ThumbnailTooLarge(
                            f"Image is over THUMBNAIL_MAX_BYTES={self.max_bytes} bytes"
                        )
                    if len(head) < _SNIFF_BYTES:
                        head += chunk[: _SNIFF_BYTES - len(head)]
                        if len(head) == _SNIFF_BYTES:  # checked as soon as it can be
                            _check_magic(head, content_type)
                    out.write(chunk)
            if len(head) < _SNIFF_BYTES:  # a body shorter than that
                _check_magic(head, content_type)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return size


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


@dataclass(frozen=True, slots=True)
class TaskRun:
    """What one thumbnail task did, and where its record went."""

    succeeded: bool
    recorded: Recorded


def thumbnail_key(game_id: int, url: str) -> str:
    """The dedupe key of a game's thumbnail job: one live download per game and URL."""
    return f"{TASK_TYPE}:{game_id}:{_url_digest(url)}"


async def enqueue_thumbnail(
    session: AsyncSession,
    game_id: int,
    url: str,
    *,
    max_attempts: int,
    trigger: Trigger = "initial",
    failure_id: int | None = None,
) -> Enqueued:
    """Queue the download of a game's thumbnail in the caller's transaction (the outbox:
    committed with the game, or not at all)."""
    return await enqueue(
        session,
        task_type=TASK_TYPE,
        payload={"game_id": game_id, "url": url},
        max_attempts=max_attempts,
        dedupe_key=thumbnail_key(game_id, url),
        trigger=trigger,
        failure_id=failure_id,
    )


class ThumbnailJob(BaseModel):
    """A `thumbnail_download` job's payload."""

    model_config = ConfigDict(extra="forbid", strict=True)

    game_id: int = PydanticField(ge=1)
    url: str = PydanticField(min_length=1)


def thumbnail_handler(
    downloader: ThumbnailDownloader, recorder: TaskRecorder
) -> Callable[[ClaimedJob], Awaitable[None]]:
    """The job pool's handler for `thumbnail_download` jobs."""

    async def handle(job: ClaimedJob) -> None:
        try:
            payload = ThumbnailJob.model_validate(job.payload)
        except ValidationError as exc:
            raise InvalidJobPayload(_validation_summary(exc)) from None
        await run_thumbnail_task(
            downloader,
            recorder,
            game_id=payload.game_id,
            url=payload.url,
            trigger=job.trigger,  # type: ignore[arg-type]
            failure_id=job.failure_id,
            job=job,
        )

    return handle


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
        for error in exc.errors()
    )


async def run_thumbnail_task(
    downloader: ThumbnailDownloader,
    recorder: TaskRecorder,
    *,
    game_id: int,
    url: str,
    trigger: Trigger = "initial",
    failure_id: int | None = None,
    job: ClaimedJob | None = None,
) -> TaskRun:
    """Download one thumbnail and record the run; whether it succeeded and where the record
    went (only a `stored` record is visible yet).

    With `job`, the record is that job's attempt and finishes it. Never raises, but for
    cancellation. A job's download cut short is left to its job (handed back at shutdown,
    or taken over); one without a job (a manual retry) is spooled as a failure to retry
    (the database may already be closing). Either way the cancellation goes on.
    """
    started = utcnow()
    job_fields: dict[str, Any] = (
        {"record_id": job.record_id, "job_id": job.id, "job_attempt": job.attempt}
        if job is not None
        else {}
    )

    def failed(message: str, error_type: str, attempts: int, exc: BaseException) -> TaskRecord:
        return TaskRecord(
            task_type=TASK_TYPE,
            game_id=game_id,
            outcome="failure",
            attempts=attempts,
            started_at=started,
            finished_at=utcnow(),
            trigger=trigger,
            url=url,
            error_message=message,
            error_type=error_type,
            stack_trace="".join(traceback.format_exception(exc)),
            failure_id=failure_id,
            **job_fields,
        )

    progress = Progress()
    try:
        stored = await downloader.download(game_id, url, progress=progress)
    except asyncio.CancelledError as exc:
        if job is not None:
            raise
        message = "Cancelled: the service shut down during the download"
        record = failed(message, "ShutdownCancelled", max(1, progress.attempts), exc)
        recorder.spool.append_now(record.to_json())
        raise
    except ThumbnailError as exc:
        recorded = await recorder.record(failed(str(exc), exc.error_type, exc.attempts, exc))
        return TaskRun(False, recorded)
    except Exception as exc:
        # A bug, not an outage: still recorded, so nothing disappears silently.
        logger.exception("thumbnail download for game %s crashed", game_id)
        recorded = await recorder.record(
            failed(f"Unexpected error: {_describe(exc)}", type(exc).__name__, 1, exc)
        )
        return TaskRun(False, recorded)
    recorded = await recorder.record(
        TaskRecord(
            task_type=TASK_TYPE,
            game_id=game_id,
            outcome="success",
            attempts=stored.attempts,
            started_at=started,
            finished_at=utcnow(),
            trigger=trigger,
            url=url,
            failure_id=failure_id,
            thumbnail_path=str(stored.path),
            **job_fields,
        )
    )
    return TaskRun(True, recorded)
