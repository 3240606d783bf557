"""The stable names of the requests in Locust's statistics, and the groups thresholds use.

Every request carries one of these as `name=`, so the statistics have one row per route
whatever the ids and query strings were.
"""

from __future__ import annotations

HEALTH = "/health"
READY = "/health/ready"

PUBLIC_LIST = "/api/public/games"
PUBLIC_SEARCH = "/api/public/games?q="
PUBLIC_DETAIL = "/api/public/games/{id}"

BREAKER_STATUS = "/api/admin/monitoring/circuit-breaker-status"
BREAKERS = "/api/admin/monitoring/circuit-breakers"
BACKGROUND_FAILURES = "/api/admin/monitoring/background-failures"

IMPORT = "/api/admin/games/import/{bgg_id}"
IMPORT_BREAKER_OPEN = "import (breaker open)"
"""An import the open BGG breaker rejected with 503 + Retry-After (the designed answer), sent
when this load generator already knew the breaker was open: the breaker's own response."""
IMPORT_BREAKER_OPENING = "import (breaker opening)"
"""The same rejection for an import sent before this load generator had seen the breaker open:
imports caught by the opening, including those that slept in a retry wait meanwhile (see
`outcomes.BreakerBelief`). Also a success, with latency figures of its own."""

REJECTIONS: tuple[str, ...] = (IMPORT_BREAKER_OPEN, IMPORT_BREAKER_OPENING)
"""Every import the breaker rejected."""
PUBLIC_READS: tuple[str, ...] = (PUBLIC_LIST, PUBLIC_SEARCH, PUBLIC_DETAIL)
"""What the public-latency threshold covers."""
