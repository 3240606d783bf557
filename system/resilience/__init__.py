"""Circuit breakers, retry policies and the retry budget. Knows no routes and no tables."""
