"""Fixtures with the harness's fault injectors: fake BGG, fake CDN, the TCP fault proxy.

The servers start once per session (each costs tens of milliseconds to start and a few
hundred to stop) and are reset before every test that uses them. Registered as a pytest
plugin by the root conftest, so the service's tests and the harness's tests share them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from chaos.fakes import (
    BggApp,
    CdnApp,
    FakeControl,
    RunningServer,
    bgg_base_url,
    create_bgg_app,
    create_cdn_app,
    run_in_thread,
)
from chaos.proxy import ProxyServer


@pytest.fixture(scope="session")
def cdn_server() -> Iterator[RunningServer]:
    with run_in_thread(create_cdn_app(seed=1)) as server:
        yield server


@pytest.fixture(scope="session")
def bgg_server() -> Iterator[RunningServer]:
    """A fake BGG without CDN rewriting, so fixture files are served byte for byte."""
    with run_in_thread(create_bgg_app(seed=1)) as server:
        yield server


def _reset(server: RunningServer) -> None:
    app = server.app
    assert isinstance(app, BggApp | CdnApp)
    app.engine.reset(seed=1)
    app.log.reset()


@pytest.fixture
def bgg(bgg_server: RunningServer) -> Iterator[RunningServer]:
    _reset(bgg_server)
    yield bgg_server
    _reset(bgg_server)


@pytest.fixture
def cdn(cdn_server: RunningServer) -> Iterator[RunningServer]:
    _reset(cdn_server)
    yield cdn_server
    _reset(cdn_server)


@pytest.fixture
def bgg_ctl(bgg: RunningServer) -> Iterator[FakeControl]:
    with FakeControl(bgg.url) as control:
        yield control


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[ProxyServer]:
    with ProxyServer(seed=3) as server:
        yield server


@pytest.fixture
def proxies(proxy_server: ProxyServer) -> Iterator[ProxyServer]:
    yield proxy_server
    for name in proxy_server.proxies():
        proxy_server.remove(name)


@pytest.fixture(scope="session")
def bgg_with_cdn_server(cdn_server: RunningServer) -> Iterator[RunningServer]:
    """A fake BGG whose thumbnails point at the fake CDN (what the service tests use)."""
    with run_in_thread(create_bgg_app(seed=1, cdn_base_url=cdn_server.url)) as server:
        yield server


@dataclass
class Upstreams:
    """The fake BGG and CDN a service under test talks to, over real sockets."""

    bgg: RunningServer
    cdn: RunningServer

    @property
    def bgg_base_url(self) -> str:
        """What BGG_BASE_URL should be."""
        return bgg_base_url(self.bgg.url)

    @property
    def bgg_app(self) -> BggApp:
        """The fake BGG itself (its fault engine and request log)."""
        app = self.bgg.app
        assert isinstance(app, BggApp)
        return app

    @property
    def cdn_app(self) -> CdnApp:
        """The fake CDN itself."""
        app = self.cdn.app
        assert isinstance(app, CdnApp)
        return app

    def thing_requests(self) -> int:
        """How many `thing` requests reached the fake BGG."""
        return self.bgg_app.log.count(path="/thing")

    def image_requests(self) -> int:
        """How many image requests reached the fake CDN."""
        return sum(1 for r in self.cdn_app.log.records() if r.path.startswith("/images/"))


@pytest.fixture
def upstreams(bgg_with_cdn_server: RunningServer, cdn_server: RunningServer) -> Iterator[Upstreams]:
    """Freshly reset fake BGG and CDN."""
    for server in (bgg_with_cdn_server, cdn_server):
        _reset(server)
    yield Upstreams(bgg=bgg_with_cdn_server, cdn=cdn_server)
    for server in (bgg_with_cdn_server, cdn_server):
        _reset(server)
