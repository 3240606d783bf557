"""Fake upstreams as real HTTP servers on loopback: BGG XML API2 and the image CDN.

Typical use (sync code: the harness, Locust, a test)::

    from chaos.fakes import FakeControl, bgg_base_url, create_bgg_app, create_cdn_app, run_in_thread

    with run_in_thread(create_cdn_app()) as cdn, \\
         run_in_thread(create_bgg_app(cdn_base_url=cdn.url)) as bgg:
        ctl = FakeControl(bgg.url)
        ctl.add_fault(status=503, first_n=2, path="/thing")
        ...  # point the service at BGG_BASE_URL=bgg_base_url(bgg.url)

or from a shell: `python -m chaos.fakes bgg --port 8001 --cdn-url http://127.0.0.1:8002`.
"""

from chaos.fakes.app import Answer, FakeApp
from chaos.fakes.bgg import BggApp, bgg_base_url, create_bgg_app
from chaos.fakes.cdn import CdnApp, create_cdn_app
from chaos.fakes.control import FakeControl, FakeControlError
from chaos.fakes.faults import BODY_KINDS, FaultEngine, FaultRule, RequestInfo, sequence
from chaos.fakes.log import RequestLog, RequestRecord
from chaos.fakes.server import RunningServer, run_in_thread

__all__ = [
    "BODY_KINDS",
    "Answer",
    "BggApp",
    "CdnApp",
    "FakeApp",
    "FakeControl",
    "FakeControlError",
    "FaultEngine",
    "FaultRule",
    "RequestInfo",
    "RequestLog",
    "RequestRecord",
    "RunningServer",
    "bgg_base_url",
    "create_bgg_app",
    "create_cdn_app",
    "run_in_thread",
    "sequence",
]
