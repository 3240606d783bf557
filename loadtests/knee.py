"""Where throughput stops growing with load: the knee of a ramp run.

Given the steps of a ramp (users, requests per second, a latency percentile), the knee is the
last step at which the service still kept up: throughput grew by at least `efficiency` of the
growth in users since the step before, and latency stayed under the bound. The step after it
is where queueing starts. With no such step the service kept up all the way (`None`: ramp to
more users to find it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """One ramp step's figures."""

    users: int
    rps: float
    p95_ms: float


@dataclass(frozen=True, slots=True)
class Knee:
    """The last step that kept up (index into the steps) and why the next did not."""

    index: int
    users: int
    rps: float
    p95_ms: float
    reason: str


def find_knee(
    steps: Sequence[Step], *, latency_bound_ms: float | None = None, efficiency: float = 0.8
) -> Knee | None:
    """The knee of `steps` (see the module docstring), or None if every step kept up.

    If the first step is already over the latency bound the knee lies below it: the result has
    `index` -1 and 0 users.
    """
    if steps and latency_bound_ms is not None and steps[0].p95_ms >= latency_bound_ms:
        first = steps[0]
        reason = (
            f"the first step ({first.users} users) already had p95 {first.p95_ms:g} ms "
            f"(bound {latency_bound_ms:g} ms): start lower"
        )
        return Knee(-1, 0, 0.0, 0.0, reason)
    for i in range(1, len(steps)):
        before, now = steps[i - 1], steps[i]
        reason = ""
        if latency_bound_ms is not None and now.p95_ms >= latency_bound_ms:
            reason = f"p95 reached {now.p95_ms:g} ms (bound {latency_bound_ms:g} ms)"
        elif before.users > 0 and before.rps > 0 and now.users > before.users:
            user_growth = now.users / before.users - 1
            rps_growth = now.rps / before.rps - 1
            if rps_growth < efficiency * user_growth:
                reason = (
                    f"{now.users} users gave {now.rps:.0f} req/s: {rps_growth * 100:+.0f} % "
                    f"for {user_growth * 100:+.0f} % users"
                )
        if reason:
            return Knee(i - 1, before.users, before.rps, before.p95_ms, reason)
    return None
