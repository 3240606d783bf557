"""The ASGI shell shared by the fake upstreams: faults, request log and control API.

`FakeApp(name, handler)` turns a plain function `handler(RequestInfo) -> Answer` (the fake's
normal behaviour) into an ASGI app that, for every request outside `/_control/`:

1. logs it (`RequestLog`), asks the `FaultEngine` for a rule,
2. applies the rule (hang, delay, status, body, headers, oversize, chunked) on top of the
   handler's normal answer, and
3. records the outcome (status served, duration, bytes, or that the client went away).

Control API (JSON in, JSON out, bad input -> 422 with a `detail` reason):

| route | does |
|---|---|
| `GET /_control/health` | `{"status": "ok", "name", "seed", "rules", "requests", "in_flight"}` |
| `GET /_control/requests` | `{"requests": [...], "count", "last_seq", "counters"}`; query |
|   | parameters `since` (seq), `path`, `status`, `rule`, `limit` (newest N; 0: counts only) |
| `GET /_control/faults` | `{"seed", "rules": [{"rule": {...}, "matched", "fired"}]}` |
| `POST /_control/faults` | replace the rules with a JSON list of rules |
| `POST /_control/faults/add` | append one rule (a JSON object) or several (a list); 201 |
| `DELETE /_control/faults` | remove every rule (releases hangs) |
| `POST /_control/reset` | remove rules and clear the log; optional body `{"seed": N}` |

Control requests are neither logged nor faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from chaos.fakes.bodies import HTML_CONTENT_TYPE, Fixtures, fault_body, html_error_page, status_body
from chaos.fakes.faults import FaultEngine, FaultRule, RequestInfo
from chaos.fakes.log import RequestLog, RequestRecord

CONTROL_PREFIX = "/_control"
_CHUNK = 64 * 1024
_RULES = TypeAdapter(list[FaultRule])


@dataclass(frozen=True, slots=True)
class Answer:
    """A fake's normal answer to one request."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[RequestInfo], Answer]


def html_answer(status: int) -> Answer:
    """An error status with the HTML page nginx (or a CDN) would send with it."""
    return Answer(status, html_error_page(status), HTML_CONTENT_TYPE)


class _ClientWatch:
    """Watches `receive()` for `http.disconnect` while the app waits or streams."""

    def __init__(self, receive: Receive) -> None:
        self.gone = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if the client went away meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), timeout=seconds)
        return self.gone.is_set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class FakeApp:
    """ASGI app: a fake upstream with a fault engine, a request log and `/_control/`."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        engine: FaultEngine | None = None,
        log: RequestLog | None = None,
        seed: int = 0,
        fixtures: Fixtures | None = None,
        strip_prefix: str | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.engine = engine if engine is not None else FaultEngine(seed=seed)
        self.log = log if log is not None else RequestLog()
        self.fixtures = fixtures if fixtures is not None else Fixtures()
        self.strip_prefix = strip_prefix.rstrip("/") if strip_prefix else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hangs: set[tuple[int, asyncio.Event]] = set()
        self.engine.subscribe(self._rules_changed)
        self._control = Router(
            routes=[
                Route(f"{CONTROL_PREFIX}/health", self._health, methods=["GET"]),
                Route(f"{CONTROL_PREFIX}/requests", self._requests, methods=["GET"]),
                Route(f"{CONTROL_PREFIX}/faults", self._faults, methods=["GET", "POST", "DELETE"]),
                Route(f"{CONTROL_PREFIX}/faults/add", self._faults_add, methods=["POST"]),
                Route(f"{CONTROL_PREFIX}/reset", self._reset, methods=["POST"]),
            ]
        )

    # ------------------------------------------------------------------ ASGI entry point

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        info = self._request_info(scope)
        if info.path == CONTROL_PREFIX or info.path.startswith(CONTROL_PREFIX + "/"):
            await self._control({**scope, "path": info.path}, receive, send)
            return
        await self._serve(info, receive, send)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _request_info(self, scope: Scope) -> RequestInfo:
        raw_path: str = scope["path"]
        path = raw_path
        prefix = self.strip_prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        query_string = bytes(scope.get("query_string", b"")).decode("latin-1")
        return RequestInfo(
            method=scope["method"],
            path=path,
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            query_string=query_string,
            raw_path=raw_path,
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        )

    # ------------------------------------------------------------------ faulted requests

    async def _serve(self, info: RequestInfo, receive: Receive, send: Send) -> None:
        record = self.log.start(info)
        rule = self.engine.decide(info)
        if rule is not None:
            self.log.set_rule(record, rule.name)
        needs_watch = rule is not None and (
            rule.hang or rule.delay > 0 or rule.oversize is not None or rule.chunked
        )
        watch = _ClientWatch(receive) if needs_watch else None
        try:
            if rule is not None and watch is not None:
                if rule.hang and not await self._hang(watch):
                    self.log.finish(record, status=None, outcome="disconnected")
                    return
                if rule.delay > 0 and await watch.sleep(rule.delay):
                    self.log.finish(record, status=None, outcome="disconnected")
                    return
            await self._answer(info, rule, record, send, watch)
        finally:
            if watch is not None:
                await watch.close()

    async def _answer(
        self,
        info: RequestInfo,
        rule: FaultRule | None,
        record: RequestRecord,
        send: Send,
        watch: _ClientWatch | None,
    ) -> None:
        try:
            answer = self.handler(info)
        except Exception:  # a handler bug must still show up in the log
            self.log.finish(record, status=500, outcome="served")
            raise
        status, content_type, body = answer.status, answer.content_type, answer.body
        headers = list(answer.headers)
        oversize: int | None = None
        chunked = False
        if rule is not None:
            new_type: str | None = None
            if rule.oversize is not None:
                oversize = rule.oversize
                status = rule.status or 200
            elif rule.body is not None:
                status = rule.status or status
                body, new_type = fault_body(
                    rule.body, status=status, normal=body, fixtures=self.fixtures
                )
            elif rule.text is not None:
                status = rule.status or status
                body, new_type = rule.text.encode(), "text/plain; charset=utf-8"
            elif rule.status is not None:
                status = rule.status
                body, new_type = status_body(status, normal=body, fixtures=self.fixtures)
            content_type = rule.content_type or new_type or content_type
            if rule.retry_after is not None:
                headers.append(("Retry-After", str(rule.retry_after)))
            headers.extend(rule.headers.items())
            chunked = rule.chunked
        raw = [(b"content-type", content_type.encode("latin-1"))]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        length = oversize if oversize is not None else len(body)
        if not chunked:
            raw.append((b"content-length", str(length).encode()))
        if info.method == "HEAD":
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            self.log.finish(record, status=status, outcome="served")
            return
        if oversize is not None:
            sent = await self._stream_oversize(
                send, status, raw, oversize, body, content_type, watch
            )
        elif chunked:
            sent = await self._stream(send, status, raw, body, watch)
        else:
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            sent = len(body)
        gone = watch is not None and watch.gone.is_set() and sent < length
        self.log.finish(
            record, status=status, outcome="disconnected" if gone else "served", bytes_sent=sent
        )

    @staticmethod
    async def _stream(
        send: Send,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        watch: _ClientWatch | None,
    ) -> int:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        sent = 0
        for start in range(0, len(body), _CHUNK):
            if watch is not None and watch.gone.is_set():
                return sent
            piece = body[start : start + _CHUNK]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
        await send({"type": "http.response.body", "body": b""})
        return sent

    @staticmethod
    async def _stream_oversize(
        send: Send,
        status: int,
        headers: list[tuple[bytes, bytes]],
        size: int,
        normal: bytes,
        content_type: str,
        watch: _ClientWatch | None,
    ) -> int:
        """Send `size` bytes: the start of the normal body, then filler, 64 KiB at a time."""
        textual = any(word in content_type for word in ("xml", "html", "text", "json"))
        filler = (b" " if textual else b"\0") * _CHUNK
        await send({"type": "http.response.start", "status": status, "headers": headers})
        head = normal[: min(len(normal), 1024, size)]
        sent = 0
        if head:
            await send({"type": "http.response.body", "body": head, "more_body": True})
            sent = len(head)
        while sent < size:
            if watch is not None and watch.gone.is_set():
                return sent
            piece = filler if size - sent >= _CHUNK else filler[: size - sent]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
            await asyncio.sleep(0)  # let the disconnect watcher run
        await send({"type": "http.response.body", "body": b""})
        return sent

    async def _hang(self, watch: _ClientWatch) -> bool:
        """Wait until the rule set changes (True) or the client goes away (False)."""
        generation = self.engine.generation
        released = asyncio.Event()
        entry = (generation, released)
        self._hangs.add(entry)
        try:
            if self.engine.generation != generation:
                return True
            waiters = {
                asyncio.ensure_future(released.wait()),
                asyncio.ensure_future(watch.gone.wait()),
            }
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            return not watch.gone.is_set()
        finally:
            self._hangs.discard(entry)

    def _rules_changed(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(self._release_hangs)

    def _release_hangs(self) -> None:
        current = self.engine.generation
        for generation, event in list(self._hangs):
            if generation != current:
                event.set()

    # ------------------------------------------------------------------ control API

    async def _health(self, request: Request) -> Response:
        counters = self.log.counters()
        return JSONResponse(
            {
                "status": "ok",
                "name": self.name,
                "seed": self.engine.seed,
                "rules": len(self.engine.rules()),
                "requests": counters["total"],
                "in_flight": counters["in_flight"],
            }
        )

    async def _requests(self, request: Request) -> Response:
        params = request.query_params
        try:
            since = _int_param(params.get("since"), "since")
            status = _int_param(params.get("status"), "status")
            limit = _int_param(params.get("limit"), "limit")
        except ValueError as exc:
            return json_error(str(exc))
        if limit is not None and limit < 0:
            return json_error("limit must be >= 0")
        path, rule = params.get("path"), params.get("rule")
        shown = self.log.records(since=since, path=path, status=status, rule=rule, limit=limit)
        return JSONResponse(
            {
                "requests": [r.to_dict() for r in shown],
                "count": self.log.count(since=since, path=path, status=status, rule=rule),
                "last_seq": self.log.last_seq,
                "counters": self.log.counters(),
            }
        )

    async def _faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"seed": self.engine.seed, "rules": self.engine.stats()})
        if request.method == "DELETE":
            self.engine.clear()
            return JSONResponse({"rules": []})
        data = await _json_body(request)
        if isinstance(data, Response):
            return data
        if not isinstance(data, list):
            return json_error("expected a JSON list of fault rules")
        try:
            rules = self.engine.set_rules(_RULES.validate_python(data))
        except ValidationError as exc:
            return _invalid(exc)
        except ValueError as exc:
            return json_error(str(exc))
        return JSONResponse({"rules": [_dump(r) for r in rules]})

    async def _faults_add(self, request: Request) -> Response:
        data = await _json_body(request)
        if isinstance(data, Response):
            return data
        items = data if isinstance(data, list) else [data]
        try:
            rules = _RULES.validate_python(items)
        except ValidationError as exc:
            return _invalid(exc)
        added: list[FaultRule] = []
        try:
            for rule in rules:
                added.append(self.engine.add(rule))
        except ValueError as exc:
            return json_error(str(exc))
        return JSONResponse({"rules": [_dump(r) for r in added]}, status_code=201)

    async def _reset(self, request: Request) -> Response:
        seed: int | None = None
        if await request.body():
            data = await _json_body(request)
            if isinstance(data, Response):
                return data
            if not isinstance(data, dict) or set(data) - {"seed"}:
                return json_error('expected {"seed": <int>} or an empty body')
            raw_seed = data.get("seed")
            if raw_seed is not None and (type(raw_seed) is not int):
                return json_error("seed must be an integer")
            seed = raw_seed
        self.engine.reset(seed)
        self.log.reset()
        return JSONResponse({"status": "reset", "seed": self.engine.seed})


def _dump(rule: FaultRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_defaults=True)


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def json_error(detail: str, errors: Any = None, *, status: int = 422) -> Response:
    """A control API's error: `{"detail": reason}`, plus pydantic's `errors` when given."""
    payload: dict[str, Any] = {"detail": detail}
    if errors is not None:
        payload["errors"] = errors
    return JSONResponse(payload, status_code=status)


def first_error(exc: ValidationError) -> tuple[str, str, Any]:
    """Where pydantic's first error is (`a.b`; "" for the whole input), its message, and
    every error as JSON."""
    errors = json.loads(exc.json(include_url=False))
    first = errors[0] if errors else {}
    return ".".join(str(p) for p in first.get("loc", ())), first.get("msg", "invalid"), errors


def _invalid(exc: ValidationError) -> Response:
    where, message, errors = first_error(exc)
    return json_error(f"{where}: {message}" if where else message, errors)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        return json_error(f"body is not valid JSON: {exc}")
