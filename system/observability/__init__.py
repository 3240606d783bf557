"""Sentry reporting, Prometheus metrics and the service's own alerts."""
