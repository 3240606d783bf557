"""What the hypotheses are stated against: the spec's promises and the harness's own settings.

Two kinds of numbers, kept apart on purpose:

- `Spec`: promises of the specification ("the breaker opens after 5 failed requests",
  "rejections under 50 ms", "3 thumbnail attempts"). The harness never sets these on the
  service; the service's defaults must keep them.
- `Harness`: values the harness configures on the service it starts, so a scenario takes
  seconds instead of minutes (a 2 s breaker reset instead of 60 s, a 2 s deadline instead
  of 15 s). Hypotheses use them as the harness set them.

Neither is ever read back from the service. So `--service-env BGG_BREAKER_FAIL_MAX=1000`
(a candidate configuration) is applied on top and the scenario that tests "opens after 5"
fails, which is the point of trying a configuration here before deploying it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spec:
    """Promises of the specification (and README's defaults)."""

    breaker_fail_max: int = 5
    retry_attempts: int = 3
    thumbnail_attempts: int = 3
    rejection_p99_ms: float = 50.0
    #: bgg_flaky's "at most 10 of 200 imports fail" as a rate (a test keeps them equal).
    flaky_import_success: float = 0.95
    public_error_rate: float = 0.0
    #: README's retry budget: `BGG_RETRY_BUDGET_RATIO` and the bucket's size.
    retry_budget_ratio: float = 0.5
    retry_budget_capacity: float = 10.0


@dataclass(frozen=True, slots=True)
class Harness:
    """Settings the harness gives the service it starts (all times in seconds)."""

    breaker_reset_timeout: float = 2.0
    cdn_breaker_reset_timeout: float = 2.0
    deadline: float = 2.0
    retry_initial_wait: float = 0.05
    retry_max_wait: float = 0.2
    thumbnail_timeout: float = 0.5
    thumbnail_min_wait: float = 0.05
    thumbnail_max_wait: float = 0.2
    database_connect_timeout: float = 1.0
    alert_check_interval: float = 0.2
    alert_breaker_open: float = 1.0
    recovery_check: float = 0.5
    #: The public API stays fast while imports hang: an order of magnitude under the
    #: deadline. Worker starvation shows up as the deadline itself, not as 10 % of it.
    public_p99_ms: float = 250.0
    #: The harness's own allowance for scheduling on a loaded 2-core machine when it
    #: checks "within the deadline" or "after the reset timeout" from outside.
    slack: float = 0.75

    def service_env(self) -> dict[str, str]:
        """The environment the harness gives every service it starts (before overrides)."""
        return {
            "BGG_BREAKER_RESET_TIMEOUT": _num(self.breaker_reset_timeout),
            "CDN_BREAKER_RESET_TIMEOUT": _num(self.cdn_breaker_reset_timeout),
            "BGG_DEADLINE_SECONDS": _num(self.deadline),
            "BGG_RETRY_INITIAL_WAIT": _num(self.retry_initial_wait),
            "BGG_RETRY_MAX_WAIT": _num(self.retry_max_wait),
            "THUMBNAIL_TIMEOUT": _num(self.thumbnail_timeout),
            "THUMBNAIL_RETRY_MIN_WAIT": _num(self.thumbnail_min_wait),
            "THUMBNAIL_RETRY_MAX_WAIT": _num(self.thumbnail_max_wait),
            "DATABASE_CONNECT_TIMEOUT": _num(self.database_connect_timeout),
            "ALERT_CHECK_INTERVAL_SECONDS": _num(self.alert_check_interval),
            "ALERT_BREAKER_OPEN_SECONDS": _num(self.alert_breaker_open),
            "RECOVERY_CHECK_SECONDS": _num(self.recovery_check),
        }


def _num(value: float) -> str:
    return f"{value:g}"


#: The most a statistical hypothesis may blame a service that keeps its promises: every
#: threshold on counts of random faults is derived from the fault model so that a correct
#: service exceeds it with at most this probability (`chaos.stats`).
FALSE_ALARM = 1e-6

SPEC = Spec()
HARNESS = Harness()
