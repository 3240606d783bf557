"""shared_breaker: two workers share one breaker through Redis.

Promises: failures seen by one worker count for both: 3 failed requests through worker A
and 2 through worker B open the breaker (exactly 5 between them); then both reject at once
and BGG sees nothing; after the reset timeout exactly one trial goes through, from either
worker, and closes the breaker for both.
"""

from __future__ import annotations

from chaos.core import Hypothesis, Scenario
from chaos.scenarios import common, pair

SCENARIO = Scenario(
    name="shared_breaker",
    title="Two workers, one breaker: failures via one open it for both, one trial for both",
    fault="the fake BGG answers 503; requests alternate between two workers",
    description=__doc__ or "",
    tags=("bgg", "breaker", "redis", "workers"),
    hypothesis=Hypothesis(
        "Both workers serve, share the breaker state in Redis, and the breakers are closed",
        (
            common.PUBLIC_API,
            pair.SHARED,
            common.BGG_CLOSED,
            common.CDN_CLOSED,
            common.REAL_IMPORT,
        ),
    ),
    method=(pair.OPENS_AT_FIVE, pair.BOTH_REJECT, common.ONE_TRIAL, common.TRIAL_CLOSES),
    rollbacks=(common.RESTORE,),
    service="pair",
    requires=frozenset({"redis", "two_workers"}),
)
