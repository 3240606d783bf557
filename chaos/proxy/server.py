"""`ProxyServer`: named proxies on their own thread and event loop, with a control API.

Sync code (a test, the harness, Locust) drives it through Python methods that hop onto the
proxy loop; anything else through HTTP. Both do the same things:

| Python | HTTP | answer |
|---|---|---|
| `proxies()` | `GET /proxies` | `{name: info}` |
| `create(name, upstream, listen)` | `POST /proxies` `{"name", "upstream", "listen"?}` | 201 info |
| `info(name)` | `GET /proxies/{name}` | info |
| `remove(name)` | `DELETE /proxies/{name}` | 204 |
| `toxics(name)` | `GET /proxies/{name}/toxics` | `[toxic, ...]` |
| `add_toxic(name, toxic)` | `POST /proxies/{name}/toxics` (a toxic) | 201 toxic |
| `clear_toxics(name)` | `DELETE /proxies/{name}/toxics` | 204 |
| `remove_toxic(name, toxic)` | `DELETE /proxies/{name}/toxics/{toxic}` | 204 |
| `down(name)` / `up(name)` | `POST /proxies/{name}/down` / `.../up` | info |
| `reset()` | `POST /reset` (every proxy: no toxics, up) | `{"status": "reset"}` |
| | `GET /health` | `{"status": "ok", "proxies": n}` |

`upstream` and `listen` are `"host:port"` strings; `listen` defaults to a free loopback port.
Info: `{"name", "listen": "127.0.0.1:PORT", "upstream": "host:port", "enabled",
"toxics": [...], "connections": {"active", "total"}, "bytes": {"upstream", "downstream"}}`.
Errors: 404 unknown proxy or toxic, 409 duplicate name, 422 invalid JSON or toxic (with a
`detail` reason).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from chaos.closing import Closing
from chaos.fakes.app import first_error, json_error
from chaos.fakes.server import bind_socket, check_loopback, uvicorn_config
from chaos.proxy.proxy import Proxy, ToxicExists, ToxicNotFound, parse_address
from chaos.proxy.toxics import Toxic, toxic_json

T = TypeVar("T")


class ProxyNotFound(KeyError):
    """No proxy with that name."""


class ProxyExists(ValueError):
    """A proxy with that name already exists."""


class ProxyServer(Closing):
    """Holds named `Proxy` objects on a private event loop thread."""

    def __init__(
        self,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        control_port: int | None = 0,
        call_timeout: float = 10.0,
    ) -> None:
        self.seed = seed
        self.host = check_loopback(host)
        self._control_port = control_port
        self._call_timeout = call_timeout
        self._proxies: dict[str, Proxy] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._control: uvicorn.Server | None = None
        self.control_url: str | None = None
        self._thread = threading.Thread(target=self._run, name="proxy-server", daemon=True)

    # ----------------------------------------------------------------- thread and loop

    def start(self, timeout: float = 5.0) -> ProxyServer:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("proxy server did not start")
        if self._error is not None:
            raise RuntimeError(f"proxy server failed to start: {self._error!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        serving: asyncio.Task[None] | None = None
        if self._control_port is not None:
            sock = bind_socket(self.host, self._control_port)
            port = sock.getsockname()[1]
            self.control_url = f"http://{self.host}:{port}"
            self._control = uvicorn.Server(uvicorn_config(self._control_app()))
            serving = asyncio.get_running_loop().create_task(self._control.serve(sockets=[sock]))
            while not self._control.started and not serving.done():  # noqa: ASYNC110 - no event
                await asyncio.sleep(0.002)
            if serving.done():
                serving.result()
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            if self._control is not None and serving is not None:
                self._control.should_exit = True
                await serving
            for proxy in list(self._proxies.values()):
                await proxy.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every proxy and the control API; join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> ProxyServer:
        return self.start() if not self._thread.is_alive() else self

    close = stop  # what the `with` block's end calls

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            raise RuntimeError("proxy server is not running (call start())")
        return asyncio.run_coroutine_threadsafe(make(), loop).result(self._call_timeout)

    # ----------------------------------------------------------------- async operations

    def _proxy(self, name: str) -> Proxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise ProxyNotFound(name) from None

    async def _create(
        self, name: str, upstream: tuple[str, int] | str, listen: tuple[str, int] | str
    ) -> dict[str, Any]:
        if name in self._proxies:
            raise ProxyExists(f"proxy {name!r} already exists")
        host, port = parse_address(listen)
        proxy = Proxy((check_loopback(host), port), upstream, name=name, seed=self.seed)
        await proxy.start()
        self._proxies[name] = proxy
        return proxy.info()

    async def _remove(self, name: str) -> None:
        proxy = self._proxy(name)
        del self._proxies[name]
        await proxy.stop()

    async def _info(self, name: str) -> dict[str, Any]:
        return self._proxy(name).info()

    async def _all(self) -> dict[str, dict[str, Any]]:
        return {name: proxy.info() for name, proxy in self._proxies.items()}

    async def _add_toxic(self, name: str, toxic: Toxic | Mapping[str, Any]) -> Toxic:
        return self._proxy(name).add_toxic(toxic)

    async def _toxics(self, name: str) -> list[Toxic]:
        return self._proxy(name).toxics()

    async def _remove_toxic(self, name: str, toxic: str) -> None:
        self._proxy(name).remove_toxic(toxic)

    async def _clear_toxics(self, name: str) -> None:
        self._proxy(name).clear_toxics()

    async def _down(self, name: str) -> dict[str, Any]:
        proxy = self._proxy(name)
        await proxy.down()
        return proxy.info()

    async def _up(self, name: str) -> dict[str, Any]:
        proxy = self._proxy(name)
        await proxy.up()
        return proxy.info()

    async def _reset(self) -> None:
        for proxy in self._proxies.values():
            proxy.clear_toxics()
            await proxy.up()

    # ----------------------------------------------------------------- sync Python API

    def create(
        self,
        name: str,
        upstream: tuple[str, int] | str,
        listen: tuple[str, int] | str = ("127.0.0.1", 0),
    ) -> dict[str, Any]:
        """Start a proxy `name` to `upstream` (listen port 0: a free one). Returns its info."""
        return self._call(lambda: self._create(name, upstream, listen))

    def remove(self, name: str) -> None:
        self._call(lambda: self._remove(name))

    def info(self, name: str) -> dict[str, Any]:
        return self._call(lambda: self._info(name))

    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call(self._all)

    def address(self, name: str) -> tuple[str, int]:
        """Where clients connect: `(host, port)`."""
        return self._proxy(name).listen

    def url(self, name: str, scheme: str = "http") -> str:
        host, port = self.address(name)
        return f"{scheme}://{host}:{port}"

    def toxics(self, name: str) -> list[Toxic]:
        return self._call(lambda: self._toxics(name))

    def add_toxic(
        self, name: str, toxic: Toxic | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Toxic:
        """`add_toxic("bgg", Latency(latency=200))` or `add_toxic("bgg", type="latency", ...)`."""
        if toxic is not None and fields:
            raise TypeError("give a toxic or keyword fields, not both")
        spec: Toxic | Mapping[str, Any] = toxic if toxic is not None else fields
        return self._call(lambda: self._add_toxic(name, spec))

    def remove_toxic(self, name: str, toxic: str) -> None:
        self._call(lambda: self._remove_toxic(name, toxic))

    def clear_toxics(self, name: str) -> None:
        self._call(lambda: self._clear_toxics(name))

    def down(self, name: str) -> dict[str, Any]:
        return self._call(lambda: self._down(name))

    def up(self, name: str) -> dict[str, Any]:
        return self._call(lambda: self._up(name))

    def reset(self) -> None:
        """Every proxy: remove all toxics and bring it up."""
        self._call(self._reset)

    # ----------------------------------------------------------------- HTTP control API

    def _control_app(self) -> Router:
        def endpoint(
            handler: Callable[[Request], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def wrapped(request: Request) -> Response:
                try:
                    return await handler(request)
                except (ProxyNotFound, ToxicNotFound) as exc:
                    return json_error(f"not found: {exc.args[0] if exc.args else exc}", status=404)
                except (ProxyExists, ToxicExists) as exc:
                    return json_error(str(exc), status=409)
                except ValidationError as exc:
                    where, message, errors = first_error(exc)
                    return json_error(f"{where}: {message}", errors)
                except _BadRequest as exc:
                    return json_error(str(exc))

            return wrapped

        async def health(request: Request) -> Response:
            return JSONResponse({"status": "ok", "proxies": len(self._proxies)})

        async def proxies(request: Request) -> Response:
            if request.method == "GET":
                return JSONResponse(await self._all())
            data = await _json_object(request)
            name, upstream = data.get("name"), data.get("upstream")
            listen = data.get("listen", f"{self.host}:0")
            if not isinstance(name, str) or not name or not isinstance(upstream, str):
                raise _BadRequest('expected {"name": str, "upstream": "host:port", "listen"?}')
            if not isinstance(listen, str):
                raise _BadRequest('"listen" must be "host:port"')
            try:
                info = await self._create(name, parse_address(upstream), parse_address(listen))
            except ValueError as exc:
                if isinstance(exc, ProxyExists):
                    raise
                raise _BadRequest(str(exc)) from None
            except OSError as exc:
                raise _BadRequest(f"cannot listen on {listen}: {exc}") from None
            return JSONResponse(info, status_code=201)

        async def proxy(request: Request) -> Response:
            name = request.path_params["name"]
            if request.method == "DELETE":
                await self._remove(name)
                return Response(status_code=204)
            return JSONResponse(await self._info(name))

        async def toxics(request: Request) -> Response:
            name = request.path_params["name"]
            if request.method == "GET":
                return JSONResponse([toxic_json(t) for t in await self._toxics(name)])
            if request.method == "DELETE":
                await self._clear_toxics(name)
                return Response(status_code=204)
            self._proxy(name)
            data = await _json_object(request)
            return JSONResponse(toxic_json(await self._add_toxic(name, data)), status_code=201)

        async def toxic(request: Request) -> Response:
            await self._remove_toxic(request.path_params["name"], request.path_params["toxic"])
            return Response(status_code=204)

        async def down(request: Request) -> Response:
            return JSONResponse(await self._down(request.path_params["name"]))

        async def up(request: Request) -> Response:
            return JSONResponse(await self._up(request.path_params["name"]))

        async def reset(request: Request) -> Response:
            await self._reset()
            return JSONResponse({"status": "reset"})

        return Router(
            routes=[
                Route("/health", endpoint(health), methods=["GET"]),
                Route("/proxies", endpoint(proxies), methods=["GET", "POST"]),
                Route("/proxies/{name}", endpoint(proxy), methods=["GET", "DELETE"]),
                Route(
                    "/proxies/{name}/toxics", endpoint(toxics), methods=["GET", "POST", "DELETE"]
                ),
                Route("/proxies/{name}/toxics/{toxic}", endpoint(toxic), methods=["DELETE"]),
                Route("/proxies/{name}/down", endpoint(down), methods=["POST"]),
                Route("/proxies/{name}/up", endpoint(up), methods=["POST"]),
                Route("/reset", endpoint(reset), methods=["POST"]),
            ]
        )


class _BadRequest(ValueError):
    pass


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("expected a JSON object")
    return data
