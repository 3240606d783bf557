"""A fake Sentry ingest on loopback: the real sentry-sdk in the service sends its envelopes here.

The service gets a real DSN, `http://<key>@127.0.0.1:<port>/1`, so what is judged is what
the SDK really sends, after `before_send`, the traces sampler and the SDK's own scrubbing:
error events, transactions, profiles and whatever else an envelope carries. Envelopes come
gzip-compressed (or brotli, when the service has the module) to `POST /api/<project>/envelope/`;
each item is kept with its type, its decoded payload and its raw text (for looking for
secrets in every form they can take, not only in the fields one thinks of).

`canaries()` are the secret settings a scenario gives the service (`service_env`): known
values no event, breadcrumb or log line may carry.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from chaos.fakes import RunningServer, run_in_thread

#: The DSN's public key: a secret the service must scrub (`system/observability/sentry.py`).
DSN_KEY = "chaosdsnkey5e1f0c0ffee"
#: `BGG_API_TOKEN`: sent to the fake BGG as a bearer token, never to be reported.
BGG_TOKEN = "chaos-bgg-token-Q7v2xK"  # noqa: S105 - a canary: known on purpose
PROJECT = "1"


@dataclass(frozen=True, slots=True)
class Item:
    """One envelope item as received."""

    received: float  # time.monotonic()
    type: str
    #: The JSON payload (an event, a transaction...); None when it is not JSON.
    payload: dict[str, Any] | None
    raw: str

    @property
    def path(self) -> str:
        """The request path the item is about ('' when none): the request's URL, else the
        transaction's name."""
        payload = self.payload or {}
        request = payload.get("request") if isinstance(payload.get("request"), dict) else {}
        url = request.get("url") if isinstance(request, dict) else None
        if isinstance(url, str) and url:
            return urlsplit(url).path or "/"
        name = payload.get("transaction")
        return name.split(" ", 1)[-1] if isinstance(name, str) else ""


def decode_body(body: bytes, encoding: str) -> bytes:
    """The body without its `Content-Encoding` (gzip, deflate, br when brotli is there)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        # sentry-sdk picks br whenever brotli imports (locust, in the load extra, brings it).
        import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return bytes(brotli.decompress(body))
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


# Not sentry_sdk's Envelope.deserialize: it re-encodes event JSON (raw must be what was sent).
def parse_envelope(data: bytes) -> list[tuple[str, bytes]]:
    """The (type, payload) items of a Sentry envelope: a header line, then per item a header
    line and a payload of `length` bytes (or up to the next newline when none is given)."""
    items = []
    _, _, rest = data.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        if not header_line.strip():
            continue
        header = json.loads(header_line)
        length = header.get("length")
        if isinstance(length, int):
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((str(header.get("type", "")), payload))
    return items


def secret_forms(secret: str) -> set[str]:
    """The spellings of `secret` a report can hold: as is, percent-encoded, and as JSON or a
    `repr` escape it (the service scrubs the same forms, independently written here)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    forms |= {json.dumps(f)[1:-1] for f in set(forms)} | {repr(f)[1:-1] for f in set(forms)}
    return forms


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the `secrets` (name -> value) found in `text`, in any of their forms."""
    return [name for name, value in secrets.items() if any(f in text for f in secret_forms(value))]


class SentryIngest:
    """Collects what the SDK sends; `dsn` is what `SENTRY_DSN` should be."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._server: RunningServer | None = None

    def start(self) -> SentryIngest:
        """Listen on a free loopback port."""
        app = Router(routes=[
            Route("/api/{project}/envelope/", self._envelope, methods=["POST"]),
            Route("/api/{project}/store/", self._store, methods=["POST"]),
        ])  # fmt: skip
        self._server = run_in_thread(app, port=0, name="sentry")
        return self

    @property
    def dsn(self) -> str:
        """The DSN for the service (its key is `DSN_KEY`)."""
        assert self._server is not None, "start() first"
        return self._server.url.replace("://", f"://{DSN_KEY}@", 1) + f"/{PROJECT}"

    def service_env(self) -> dict[str, str]:
        """What a service reporting here is given: the DSN and a canary BGG token."""
        return {"SENTRY_DSN": self.dsn, "BGG_API_TOKEN": BGG_TOKEN}

    async def _body(self, request: Request) -> bytes:
        return decode_body(await request.body(), request.headers.get("content-encoding", ""))

    async def _envelope(self, request: Request) -> Response:
        self._keep(parse_envelope(await self._body(request)))
        return JSONResponse({"id": "0" * 32})

    async def _store(self, request: Request) -> Response:
        self._keep([("event", await self._body(request))])
        return JSONResponse({"id": "0" * 32})

    def _keep(self, items: list[tuple[str, bytes]]) -> None:
        now = time.monotonic()
        kept = []
        for kind, payload in items:
            raw = payload.decode("utf-8", errors="replace")
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            kept.append(Item(now, kind, decoded if isinstance(decoded, dict) else None, raw))
        with self._lock:
            self._items.extend(kept)

    def items(self, since: float = 0.0) -> list[Item]:
        """Items received at or after `since` (monotonic)."""
        with self._lock:
            return [i for i in self._items if i.received >= since]

    def reset(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._items.clear()

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.stop()
            self._server = None
