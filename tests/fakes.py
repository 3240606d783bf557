"""Fixtures with the harness's fault injectors: fake BGG, fake CDN, the TCP fault proxy.

The servers start once per session (each costs tens of milliseconds to start and a few
hundred to stop) and are reset before every test that uses them. Registered as a pytest
plugin by the root conftest, so the service's tests and the harness's tests share them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chaos.fakes import (
    BggApp,
    CdnApp,
    FakeControl,
    RunningServer,
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
