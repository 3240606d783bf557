"""The mutants the chaos harness must catch: each a small, deliberate bug of a real class.

Two kinds, one list, so there is one place that says what the harness must notice:

- `code`: text replacements in a throw-away copy of `system/` (`chaos.mutants.tree`);
- `env`: a broken configuration, given as `--service-env` to the real tree.

Each names the scenarios that should catch it. `KNOWN_BLIND` lists the classes of bug no
scenario can observe from outside the service, and why: they are caught by unit tests or not
at all, and are not run (a mutant that cannot be caught would only make the matrix red).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DATA_LOST = "data-lost"


@dataclass(frozen=True, slots=True)
class Replacement:
    """In `path` (relative to the repository root), `old` (found exactly once) becomes `new`."""

    path: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Mutant:
    """One deliberate bug and the scenarios that should catch it."""

    name: str
    kind: str  # "code" or "env"
    bug: str
    scenarios: tuple[str, ...]
    #: The hypotheses whose failure is this bug showing (`DATA_LOST`: the set checker's
    #: verdict). A scenario that deviates only on others has not caught it: on a loaded
    #: machine a latency or a steady-state probe can fail on a correct service too.
    hypotheses: tuple[str, ...]
    replacements: tuple[Replacement, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


_CLIENT = "system/bgg/client.py"
_SENTRY = "system/observability/sentry.py"

CODE = (
    Mutant(
        "breaker-counts-not-found",
        "code",
        "the breaker counts BGG's 'no such item' (404) as a failure",
        ("bgg_bad_answers",),
        (
            "not-found-never-opens",
            "not-found-resets-the-count",
        ),
        (
            Replacement(
                _CLIENT,
                "                    if exc.breaker_failure:\n                        raise\n",
                "                    raise\n",
            ),
        ),
    ),
    Mutant(
        "breaker-decorates-async",
        "code",
        "the spec's own bug: pybreaker as a decorator around the async request, so the breaker "
        "sees a coroutine returned, never the failure it raises when awaited",
        ("bgg_outage",),
        ("breaker-opens-after-fail-max",),
        (
            Replacement(
                _CLIENT,
                "            async with self.breaker.guard():\n"
                "                body = await self._get(bgg_id, within=min(self.request_timeout, "
                "remaining))\n",
                "            if True:\n"
                "                decorated = self.breaker.pybreaker(self._get)\n"
                "                body = await decorated(bgg_id, within=min(self.request_timeout, "
                "remaining))\n",
            ),
        ),
    ),
    Mutant(
        "retries-every-error",
        "code",
        "the retry loop retries every exception (not-found and parse errors too)",
        ("bgg_bad_answers",),
        (
            "not-found-never-opens",
            "bad-answers-are-502-not-retried",
        ),
        (
            Replacement(
                _CLIENT,
                "    return isinstance(exc, BggError) and exc.retryable\n",
                "    return True\n",
            ),
        ),
    ),
    Mutant(
        "retry-without-deadline",
        "code",
        "the import retry policy has no deadline (each attempt only has its own timeout)",
        ("bgg_blackhole",),
        ("imports-end-within-deadline",),
        (
            Replacement(
                "system/container.py",
                "        deadline=settings.bgg_deadline_seconds,\n",
                "        deadline=None,\n",
            ),
        ),
    ),
    Mutant(
        "retry-without-jitter",
        "code",
        "the retry waits have no jitter: imports that fail together retry together",
        ("bgg_retry_herd",),
        ("retries-jittered",),
        (
            Replacement(
                "system/resilience/retry.py", "        if policy.jitter:\n", "        if False:\n"
            ),
        ),
    ),
    Mutant(
        "retry-after-ignored",
        "code",
        "the retry wait ignores BGG's Retry-After and uses its own backoff",
        ("bgg_rate_limited",),
        (
            "retry-after-429-honoured",
            "retry-after-503-honoured",
        ),
        (
            Replacement(
                "system/resilience/retry.py",
                "        if isinstance(retry_after, int | float) and retry_after >= 0:\n",
                "        if False:\n",
            ),
        ),
    ),
    Mutant(
        "rejection-calls-bgg",
        "code",
        "an open breaker's rejection still sends the request to BGG (and ignores its answer)",
        ("bgg_outage",),
        ("no-upstream-request-while-open",),
        (
            Replacement(
                _CLIENT,
                "            if isinstance(exc, CircuitOpenError):\n"
                "                raise _unavailable(exc, attempts=1) from None\n",
                "            if isinstance(exc, CircuitOpenError):\n"
                "                try:\n"
                "                    await self._get(bgg_id, within=self.request_timeout)\n"
                "                except BggError:\n"
                "                    pass\n"
                "                raise _unavailable(exc, attempts=1) from None\n",
            ),
            Replacement(
                _CLIENT,
                "        except CircuitOpenError as exc:\n"
                "            raise _unavailable(exc) from None\n",
                "        except CircuitOpenError as exc:\n"
                "            try:\n"
                "                await self._get(bgg_id, within=self.request_timeout)\n"
                "            except BggError:\n"
                "                pass\n"
                "            raise _unavailable(exc) from None\n",
            ),
        ),
    ),
    Mutant(
        "failure-record-never-written",
        "code",
        "a failed background task's failure record is never written",
        ("cdn_outage",),
        ("one-failure-row-per-task",),
        (
            Replacement(
                "system/tasks/recording.py",
                '        if record.outcome == "failure" and not self.record_failures:\n',
                '        if record.outcome == "failure":\n',
            ),
        ),
    ),
    Mutant(
        "drain-drops-running-jobs",
        "code",
        "a graceful shutdown cancels running jobs without handing them back to the queue",
        ("service_restart",),
        ("unfinished-jobs-handed-back",),
        (
            Replacement(
                "system/tasks/pool.py",
                "        for entry in left:\n            if entry.stopped:\n",
                "        for entry in []:\n            if entry.stopped:\n",
            ),
        ),
    ),
    Mutant(
        "job-acked-on-claim",
        "code",
        "a job is marked done when claimed (at-most-once: the work lives only in memory)",
        ("service_restart",),
        (
            "sigkill-leaves-leased-jobs",
            "all-jobs-done",
            "killed-jobs-taken-over",
            DATA_LOST,
        ),
        (
            Replacement(
                "system/db/jobs.py",
                '        "status": "running",\n        "attempts": BackgroundJob.attempts + 1,\n',
                '        "status": "done",\n        "attempts": BackgroundJob.attempts + 1,\n',
            ),
        ),
    ),
    Mutant(
        "bulk-import-in-memory",
        "code",
        "the bulk import runs its imports as in-process tasks instead of persisted jobs",
        ("bulk_import_outage",),
        (
            "bulk-import-accepted",
            "jobs-wait",
            "every-id-ended",
            DATA_LOST,
        ),
        (
            Replacement(
                "system/api/admin.py",
                "        queued = await enqueue_imports(session, ids, "
                "max_attempts=settings.job_max_attempts)\n",
                "        from system.db.jobs import Enqueued\n"
                "        import asyncio\n"
                "        queued = [Enqueued(0, existing=False) for _ in ids]\n"
                "        for bgg_id in ids:\n"
                "            asyncio.ensure_future(services.importer.import_game(bgg_id))\n",
            ),
        ),
    ),
    Mutant(
        "sentry-health-transactions",
        "code",
        "Sentry gets the health checks' transactions (the traces sampler forgets /health)",
        ("sentry_reports",),
        ("no-sentry-event-for-health",),
        (
            Replacement(
                _SENTRY,
                'UNSAMPLED_PATHS = ("/health", "/metrics")\n',
                'UNSAMPLED_PATHS = ("/metrics",)\n',
            ),
        ),
    ),
    Mutant(
        "sentry-secrets-unscrubbed",
        "code",
        "Sentry events leave with the configured secrets in them (the scrubber not applied)",
        ("sentry_reports",),
        ("no-secret-in-reports-or-logs",),
        (
            Replacement(
                _SENTRY,
                "        scrubbed = self._scrub_secrets(event)\n",
                "        scrubbed = event\n",
            ),
        ),
    ),
    Mutant(
        "commit-after-response",
        "code",
        "the per-request session commits after the response is sent (FastAPI's default "
        "scope for a yield dependency)",
        ("database_outage",),
        ("delete-committed-before-2xx",),
        (
            Replacement(
                "system/api/deps.py",
                'SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]\n',
                "SessionDep = Annotated[AsyncSession, Depends(get_session)]\n",
            ),
        ),
    ),
)


def _env(name: str, bug: str, scenario: str, hypotheses: tuple[str, ...], setting: str) -> Mutant:
    key, _, value = setting.partition("=")
    return Mutant(name, "env", bug, (scenario,), hypotheses, env={key: value})


#: Today's broken configurations (`tests/chaos/test_broken_service.py` checks every
#: hypothesis each trips; here that the harness notices at all).
ENV = (
    _env("env-breaker-never-opens", "BGG breaker threshold far above the spec", "bgg_outage",
         ("breaker-opens-after-fail-max",), "BGG_BREAKER_FAIL_MAX=1000"),
    _env("env-breaker-never-half-opens", "BGG breaker reset timeout of an hour", "bgg_outage",
         ("one-half-open-trial",), "BGG_BREAKER_RESET_TIMEOUT=3600"),
    _env("env-no-recovery-probe", "the breaker's recovery probe switched off",
         "breaker_self_recovery", ("closes-without-traffic", "gauge-reads-closed"),
         "BGG_RECOVERY_PROBE_ID=0"),
    _env("env-retries-off", "one attempt per import (no retries)", "bgg_flaky",
         ("import-success-rate",), "BGG_RETRY_ATTEMPTS=1"),
    _env("env-deadline-60s", "an import deadline far too long", "bgg_blackhole",
         ("imports-end-within-deadline",), "BGG_DEADLINE_SECONDS=60"),
    _env("env-failure-records-off", "failure recording switched off", "cdn_outage",
         ("one-failure-row-per-task",), "RECORD_FAILURES=false"),
    _env("env-one-job-attempt", "a job whose worker died is failed, never re-run",
         "service_restart", ("all-jobs-done", "killed-jobs-taken-over"), "JOB_MAX_ATTEMPTS=1"),
)  # fmt: skip

CATALOGUE: tuple[Mutant, ...] = CODE + ENV
NAMES = tuple(m.name for m in CATALOGUE)

#: Classes of bug no scenario observes from outside, and why (not run; see the module doc).
KNOWN_BLIND = {
    "sentry-health-error-filter": "before_send's /health filter drops error events of health "
    "checks, but no health check can be made to fail from outside (readiness turns every "
    "database error into its 503 answer, unreported); sentry_reports would see such an "
    "event, tests/observability/test_sentry.py makes one with a broken dependency",
}


def get(name: str) -> Mutant:
    """The catalogued mutant `name` (KeyError if there is none)."""
    for mutant in CATALOGUE:
        if mutant.name == name:
            return mutant
    raise KeyError(name)
