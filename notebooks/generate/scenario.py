"""The story the generated data set tells, played against the real service.

Two releases of the service run one after the other on one SQLite database and one Sentry
export, against the fake BGG and image CDN of `chaos.fakes` (their fault control APIs cause
the outages):

release 1
  1. healthy imports; a few games whose image is missing at the CDN (`ImageNotFound`) or
     served with the wrong type (`UnsupportedContentType`): permanent failures;
  2. a CDN outage (503): downloads fail after their retries (`CdnServerError`), the Image
     CDN breaker opens, later downloads are rejected (`CircuitBreakerOpen`); the CDN comes
     back, the recovery probe closes the breaker and the automatic retries resolve the
     transient failures;
  3. a BGG outage (503): imports fail (502, reported to Sentry), the BGG API breaker opens
     and rejects imports (503, reported once a minute); BGG comes back, a trial closes it;
  4. an operator resolves the missing-image failures and retries the wrong-type one after
     the CDN is fixed (a manual retry that succeeds), and one more that fails again.

release 2
  5. a flaky BGG (a share of requests answer 500): retries save most imports;
  6. a regression: BGG answers HTML for some games (`BggBadResponse`, a new Sentry issue);
  7. a slow CDN for a few images (`ReadTimeout` after the retries), still failing when the
     run ends: the unresolved backlog.

Everything the generator sees (faults, breaker transitions with the service's timestamps,
alerts, imports, phases) goes to `events.jsonl` in the chaos harness's layout, recorded with
the harness's own parts (`chaos.client`, `chaos.watch`, `chaos.webhook`). Each release is a
`deployment` event (`release`, `service` 1 or 2) followed by that one service's breaker events,
whose `service` is 0 as in chaos (its position in the watched deployment).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from chaos import interrupts
from chaos.client import BGG_BREAKER, CDN_BREAKER, Call, ServiceClient
from chaos.events import EventLog
from chaos.fakes import FakeControl, bgg_base_url, create_bgg_app, create_cdn_app, run_in_thread
from chaos.service import HarnessError, ServiceProcess
from chaos.watch import BreakerWatcher
from chaos.webhook import Alert, WebhookReceiver
from notebooks.reliability.metrics import GENERATED

TOKEN = "notebooks-generator-token"  # noqa: S105 - a throw-away token for a loopback service
RELEASES = ("4f0c2a1", "9b7e3d5")
FAILURES = "/api/admin/monitoring/background-failures"

#: The harness's timings (docs/chaos.md), so outages and recoveries take seconds, not minutes.
FAST = {
    "BGG_BREAKER_RESET_TIMEOUT": "2",
    "CDN_BREAKER_RESET_TIMEOUT": "2",
    "BGG_DEADLINE_SECONDS": "2",
    "BGG_RETRY_INITIAL_WAIT": "0.05",
    "BGG_RETRY_MAX_WAIT": "0.2",
    "THUMBNAIL_TIMEOUT": "0.5",
    "THUMBNAIL_RETRY_MIN_WAIT": "0.05",
    "THUMBNAIL_RETRY_MAX_WAIT": "0.2",
    "DATABASE_CONNECT_TIMEOUT": "1",
    "ALERT_CHECK_INTERVAL_SECONDS": "0.2",
    "ALERT_BREAKER_OPEN_SECONDS": "1",
    "RECOVERY_CHECK_SECONDS": "0.5",
    "BACKGROUND_DRAIN_SECONDS": "2",
}


@contextlib.contextmanager
def running_service(env: dict[str, str], number: int, logs: Path) -> Iterator[ServiceProcess]:
    """Service `number` (`python -m system serve` with only `env`), ready, always stopped;
    its output in `logs/service-<number>.log`. `HarnessError` when it does not start."""
    service = ServiceProcess(f"service-{number}", env, log_path=logs / f"service-{number}.log")
    try:
        service.start()
        service.wait_ready(timeout=60)
        yield service
    finally:
        service.stop()


def _answer(call: Call) -> Any:
    """The body of a 2xx answer; `HarnessError` otherwise (the generator needs every call)."""
    if not call.ok:
        raise HarnessError(f"{call.method} {call.path}: {call.status or call.error}")
    return call.body


async def failures(client: ServiceClient, *, resolved: bool) -> list[dict[str, Any]]:
    """Recorded failures, newest first (every page)."""
    params: dict[str, Any] = {"limit": 500, "resolved": "true" if resolved else "false"}
    found: list[dict[str, Any]] = []
    while True:
        body = _answer(await client.background_failures(**params))
        found.extend(body["failures"])
        if not body.get("next_cursor"):
            return found
        params["cursor"] = body["next_cursor"]


async def task_runs(client: ServiceClient) -> dict[str, float]:
    """`background_task_runs_total` from /metrics, summed per trigger (empty if unanswered)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(await client.metrics_text() or ""):
        for sample in family.samples:
            if sample.name == "background_task_runs_total":
                trigger = sample.labels["trigger"]
                totals[trigger] = totals.get(trigger, 0.0) + sample.value
    return totals


@contextlib.asynccontextmanager
async def watching(client: ServiceClient, log: EventLog) -> AsyncIterator[BreakerWatcher]:
    """chaos's breaker watcher on `client` (`service` 0 in its events) until the block ends,
    with a look before it starts and after it stops."""
    watcher = BreakerWatcher([client], log)
    await watcher.poll()
    watcher.start()
    try:
        yield watcher
    finally:
        await watcher.stop()
        await watcher.poll()


async def wait_for(watcher: BreakerWatcher, breaker: str, state: str, *, bound: float) -> None:
    """Wait until the watcher has seen `breaker` in `state`, at most `bound` seconds (the
    story goes on either way: the data then shows what happened instead)."""
    deadline = time.monotonic() + bound
    while True:
        if watcher.last.get((0, breaker)) == state or time.monotonic() > deadline:
            return
        await asyncio.sleep(watcher.interval)


@dataclass(frozen=True)
class Plan:
    """How many imports each phase makes (`small` for CI, `large` for a fuller picture)."""

    healthy: int
    missing_images: int
    cdn_outage: int
    bgg_outage: int
    after_recovery: int
    flaky: int
    html: int
    slow_images: int


PLANS = {
    "small": Plan(
        healthy=16,
        missing_images=2,
        cdn_outage=8,
        bgg_outage=6,
        after_recovery=4,
        flaky=12,
        html=5,
        slow_images=2,
    ),
    "large": Plan(
        healthy=120,
        missing_images=6,
        cdn_outage=40,
        bgg_outage=30,
        after_recovery=30,
        flaky=80,
        html=12,
        slow_images=6,
    ),
}


@dataclass
class Outcome:
    """What a run produced, for `generated.json` and the progress line."""

    imports: int = 0
    statuses: dict[int | None, int] | None = None
    phases: list[dict[str, Any]] | None = None


class Story:
    """Plays the phases; one instance per generated data set."""

    def __init__(
        self,
        data_dir: Path,
        plan: Plan,
        *,
        seed: int = 1,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.data_dir = data_dir
        self.plan = plan
        self.random = random.Random(seed)
        self.progress = progress
        self.log = EventLog(data_dir / "events.jsonl")
        self.log.scenario = GENERATED
        self.outcome = Outcome(statuses={}, phases=[])
        self._used: set[int] = set()

    # -- helpers ----------------------------------------------------------------------------

    def ids(self, count: int) -> list[int]:
        """Fresh BGG ids (synthetic games of the fake BGG), never the same twice."""
        chosen: list[int] = []
        while len(chosen) < count:
            candidate = self.random.randint(100_000, 1_900_000)
            if candidate not in self._used:
                self._used.add(candidate)
                chosen.append(candidate)
        return chosen

    def phase(self, name: str) -> None:
        """Mark the start of a phase (an event, and a line of progress)."""
        self.log.emit("phase", phase=name)
        assert self.outcome.phases is not None
        self.outcome.phases.append({"phase": name, "t": time.time()})
        self.progress(name)

    def alert(self, message: Alert) -> None:
        """Log one webhook message (its machine-readable `alert` object) as an `alert` event."""
        alert = message.body.get("alert") if isinstance(message.body, dict) else None
        if not isinstance(alert, dict):
            alert = {}
        self.log.emit(
            "alert",
            rule=alert.get("rule"),
            status=alert.get("status"),
            at=alert.get("at"),
            summary=alert.get("summary"),
        )

    def fault(self, control: FakeControl, name: str, *, on: bool, **rule: Any) -> None:
        """Switch a fault on (a rule named `name` on the fake) or off (the rules named `name`
        or `name-...` removed, the others kept)."""
        if on:
            control.add_fault(name=name, **rule)
        else:
            kept = [
                r
                for r in control.faults()
                if r.name != name and not (r.name or "").startswith(name + "-")
            ]
            control.set_faults(kept)
        self.log.emit("fault", fault=name, on=on, **({"rule": rule} if on else {}))

    async def imports(
        self, admin: ServiceClient, ids: list[int], *, pause: float = 0.0
    ) -> list[int | None]:
        """Import each id; log and count the answers (None: no answer in time)."""
        statuses = []
        for bgg_id in ids:
            call = await admin.import_game(bgg_id)
            status = call.status
            self.log.emit(
                "import", bgg_id=bgg_id, status=status, latency_ms=round(call.latency_ms, 2)
            )
            statuses.append(status)
            assert self.outcome.statuses is not None
            self.outcome.statuses[status] = self.outcome.statuses.get(status, 0) + 1
            self.outcome.imports += 1
            if pause:
                await asyncio.sleep(pause)
        return statuses

    @staticmethod
    async def settle(admin: ServiceClient, *, expected_initial: int, bound: float = 20.0) -> None:
        """Wait until the service has run `expected_initial` first runs, then until no run
        has finished for 0.3 s (retries and recoveries included)."""
        deadline = time.monotonic() + bound
        last: dict[str, float] = {}
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            runs = await task_runs(admin)
            if runs != last:
                last, quiet_since = runs, time.monotonic()
            elif (
                runs.get("initial", 0) >= expected_initial and time.monotonic() - quiet_since > 0.3
            ):
                return
            await asyncio.sleep(0.1)

    # -- the story --------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Play both releases; everything started here is stopped before returning (and
        `events.jsonl` closed)."""
        try:
            return asyncio.run(self._stoppable())
        finally:
            self.log.close()

    async def _stoppable(self) -> Outcome:
        """`_run`, which SIGINT or SIGTERM cancel (its cleanup then runs) as KeyboardInterrupt."""
        task = asyncio.current_task()
        assert task is not None
        with interrupts.calling(task.cancel):
            try:
                return await self._run()
            except asyncio.CancelledError:
                raise KeyboardInterrupt("interrupted") from None

    async def _run(self) -> Outcome:
        plan = self.plan
        missing = self.ids(plan.missing_images)
        wrong_type = self.ids(1)
        cdn_app = create_cdn_app(missing=[f"pic{i}_t.jpg" for i in missing])
        with (
            contextlib.ExitStack() as stack,
            run_in_thread(cdn_app) as cdn,
            run_in_thread(create_bgg_app(cdn_base_url=cdn.url)) as bgg,
            FakeControl(cdn.url) as cdn_ctl,
            FakeControl(bgg.url) as bgg_ctl,
        ):
            alerts = WebhookReceiver(on_alert=self.alert).start()
            stack.callback(alerts.stop)
            base_env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", str(self.data_dir)),
                "LOG_LEVEL": "WARNING",
                **FAST,
                "DATABASE_URL": f"sqlite+aiosqlite:///{self.data_dir / 'bgg.db'}",
                "SENTRY_EXPORT_PATH": str(self.data_dir / "sentry.jsonl"),
                "ADMIN_TOKENS": TOKEN,
                "ENVIRONMENT": "generated",
                "BGG_BASE_URL": bgg_base_url(bgg.url),
                "IMAGE_ALLOWED_HOSTS": f"127.0.0.1:{cdn.port}",
                "ALERT_WEBHOOK_URL": alerts.url,
                "THUMBNAIL_DIR": str(self.data_dir / "var" / "thumbnails"),
                "SPOOL_PATH": str(self.data_dir / "var" / "spool.jsonl"),
            }
            await self.release_one(base_env, cdn_ctl, bgg_ctl, missing, wrong_type)
            await self.release_two(base_env, cdn_ctl, bgg_ctl)
        return self.outcome

    @contextlib.asynccontextmanager
    async def _service(self, env: dict[str, str], number: int) -> AsyncIterator[ServiceClient]:
        """Service `number` started, an admin client on it; both closed when the block ends."""
        self.log.emit("deployment", release=env["GIT_COMMIT_SHA"], service=number)
        # Starting and stopping block the loop; nothing else runs on it then (the watcher
        # starts after, and stops before; the fakes and the webhook have threads of their own).
        with running_service(env, number, self.data_dir / "logs") as service:
            admin = ServiceClient(service.url, TOKEN, timeout=30.0)
            try:
                yield admin
            finally:
                await admin.aclose()

    async def release_one(
        self,
        env: dict[str, str],
        cdn_ctl: FakeControl,
        bgg_ctl: FakeControl,
        missing: list[int],
        wrong_type: list[int],
    ) -> None:
        plan = self.plan
        env = {**env, "GIT_COMMIT_SHA": RELEASES[0]}
        self.progress(f"starting the service (release {RELEASES[0]})")
        async with self._service(env, 1) as admin, watching(admin, self.log) as watcher:
            self.phase("healthy imports, some images missing or of the wrong type")
            self.fault(
                cdn_ctl,
                "cdn-wrong-type",
                on=True,
                path=f"/images/pic{wrong_type[0]}_t.jpg",
                content_type="text/html",
            )
            created = await self.imports(admin, self.ids(plan.healthy) + missing + wrong_type)
            await self.settle(admin, expected_initial=sum(s == 201 for s in created))

            self.phase("CDN outage")
            self.fault(cdn_ctl, "cdn-503", on=True, path="/images/*", status=503)
            outage = await self.imports(admin, self.ids(plan.cdn_outage), pause=0.05)
            await wait_for(watcher, CDN_BREAKER, "open", bound=10)
            await self.settle(admin, expected_initial=sum(s == 201 for s in created + outage))
            self.fault(cdn_ctl, "cdn-503", on=False)
            self.phase("CDN back: recovery probe and automatic retries")
            await wait_for(watcher, CDN_BREAKER, "closed", bound=15)
            await self.settle(admin, expected_initial=0, bound=10)

            self.phase("BGG outage")
            self.fault(bgg_ctl, "bgg-503", on=True, path="/thing", status=503)
            await self.imports(admin, self.ids(plan.bgg_outage), pause=0.05)
            await wait_for(watcher, BGG_BREAKER, "open", bound=10)
            await asyncio.sleep(1.5)  # long enough for the breaker_open alert (1 s) to fire
            self.fault(bgg_ctl, "bgg-503", on=False)
            self.phase("BGG back: the half-open trial closes the breaker")
            await asyncio.sleep(2.2)  # BGG_BREAKER_RESET_TIMEOUT
            recovered = await self.imports(admin, self.ids(plan.after_recovery), pause=0.05)
            await wait_for(watcher, BGG_BREAKER, "closed", bound=10)
            await self.settle(admin, expected_initial=0)

            self.phase("operator: resolve missing images, retry the wrong type")
            await self.operator(admin, cdn_ctl, recovered)

    async def operator(
        self, admin: ServiceClient, cdn_ctl: FakeControl, _recent: list[int | None]
    ) -> None:
        """Resolve the permanent failures an operator accepts; retry the fixable one."""
        unresolved = await failures(admin, resolved=False)
        for failure in unresolved:
            if failure.get("error_type") == "ImageNotFound":
                resolve = f"{FAILURES}/{failure['id']}/resolve"
                _answer(await admin.call("POST", resolve, admin=True))
        wrong = [f for f in unresolved if f.get("error_type") == "UnsupportedContentType"]
        if wrong:
            retry = f"{FAILURES}/{wrong[0]['id']}/retry"
            await admin.call("POST", retry, admin=True)  # still served as HTML: fails again
            self.fault(cdn_ctl, "cdn-wrong-type", on=False)
            await admin.call("POST", retry, admin=True)  # fixed at the CDN: succeeds
        await self.settle(admin, expected_initial=0, bound=5)

    async def release_two(
        self, env: dict[str, str], cdn_ctl: FakeControl, bgg_ctl: FakeControl
    ) -> None:
        plan = self.plan
        env = {**env, "GIT_COMMIT_SHA": RELEASES[1]}
        self.progress(f"starting the service (release {RELEASES[1]})")
        async with self._service(env, 2) as admin, watching(admin, self.log):
            self.phase("flaky BGG (30 % of requests answer 500)")
            self.fault(bgg_ctl, "bgg-flaky", on=True, path="/thing", status=500, probability=0.3)
            flaky = await self.imports(admin, self.ids(plan.flaky), pause=0.05)
            self.fault(bgg_ctl, "bgg-flaky", on=False)
            await asyncio.sleep(2.2)  # let a breaker the flakiness opened half-open again

            self.phase("regression: BGG answers HTML for some games")
            html_ids = self.ids(plan.html)
            for bgg_id in html_ids:
                bgg_ctl.add_fault(
                    name=f"bgg-html-{bgg_id}",
                    path="/thing",
                    match={"id": str(bgg_id)},
                    body="html",
                )
            self.log.emit("fault", fault="bgg-html", on=True)
            # A good import after each bad one: the breaker never sees five in a row.
            good_ids = self.ids(len(html_ids))
            mixed = [i for pair in zip(html_ids, good_ids, strict=True) for i in pair]
            html = await self.imports(admin, mixed)
            self.fault(bgg_ctl, "bgg-html", on=False)

            self.phase("slow CDN for a few images (still failing at the end)")
            slow_ids = self.ids(plan.slow_images)
            for bgg_id in slow_ids:
                cdn_ctl.add_fault(
                    name=f"cdn-slow-{bgg_id}", path=f"/images/pic{bgg_id}_t.jpg", delay=1.5
                )
            self.log.emit("fault", fault="cdn-slow", on=True)
            slow = await self.imports(admin, slow_ids)
            expected = sum(s == 201 for s in flaky + html + slow)
            await self.settle(admin, expected_initial=expected, bound=20)
            self.fault(cdn_ctl, "cdn-slow", on=False)
