"""`nox -s mutants`: mutmut over the resilience layer, the job queue and the error mapping."""
