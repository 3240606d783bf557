"""The shipped Prometheus rules and Grafana dashboard use metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from system.observability.metrics import Metrics
from system.tasks.spool import Spool
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def exported_names(folder: Path) -> set[str]:
    metrics = Metrics()
    # The spool's gauges are read from its files at scrape time; a path is all they need.
    metrics.watch_spool(Spool(folder / "spool.jsonl"))
    names = set()
    for collector in list(metrics.registry._collector_to_names):
        describe = getattr(collector, "describe", collector.collect)
        for family in describe():
            names.add(family.name)
            names.update({family.name + s for s in ("_total", "_bucket", "_count", "_sum")})
    return names


LABELS = {"to_state", "from_state", "error_type", "task_type"}
FUNCTIONS = {"histogram_quantile"}


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (snake_case words that are not labels)."""
    quoted = re.sub(r'"[^"]*"', "", expr)
    words = set(re.findall(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b", quoted))
    return words - LABELS - FUNCTIONS


def test_alert_rules_cover_the_spec_and_use_real_metrics(tmp_path: Path) -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"HighErrorRate", "CircuitBreakerOpen", "UnresolvedBackgroundFailures"} <= set(alerts)
    assert "> 0.01" in alerts["HighErrorRate"]["expr"]
    assert alerts["CircuitBreakerOpen"]["for"] == "5m"
    assert "> 50" in alerts["UnresolvedBackgroundFailures"]["expr"]
    # A record set aside is a failure nobody sees in the API: it pages at once.
    assert alerts["FailureSpoolQuarantine"]["expr"] == "max(failure_spool_quarantined) > 0"
    # Issue 11: a due job nobody claims for five minutes (the service's `job_backlog` too).
    backlog = alerts["BackgroundJobBacklog"]
    assert _squeezed(backlog["expr"]) == "max(background_job_oldest_queued_seconds)>300"
    assert backlog["for"] == "1m"
    known = exported_names(tmp_path)
    for alert in alerts.values():
        assert metric_names(alert["expr"]) <= known, alert["alert"]


def test_dashboard_queries_use_real_metrics(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    known = exported_names(tmp_path)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        assert metric_names(expr) <= known, expr


def _squeezed(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_the_error_rate_panel_plots_what_the_alert_measures() -> None:
    """Only the BGG breaker's rejections are HTTP answers (503s of the import route); the
    Image CDN breaker rejects background downloads, so subtracting its rejections too would
    hide real 5xx answers."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    alert_expr = _squeezed(alerts["HighErrorRate"]["expr"])
    assert alert_expr.endswith(">0.01")
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"].startswith("Error rate")]
    (target,) = panel["targets"]
    assert _squeezed(target["expr"]) == alert_expr.removesuffix(">0.01")


def test_every_error_rate_subtracts_only_the_bgg_breakers_rejections() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    error_rates = [e for e in exprs if re.search(r'status=~"5\.\."', e)]
    assert len(error_rates) >= 2
    subtracted = '-(sum(rate(circuit_breaker_rejections_total{breaker="BGGAPI"}[5m]))orvector(0))'
    for expr in error_rates:
        rejections = re.findall(r"circuit_breaker_rejections_total(\{[^}]*\})?", expr)
        assert rejections, expr
        assert all(selector == '{breaker="BGG API"}' for selector in rejections), expr
        # The series appears only with the first rejection; without `or vector(0)` the
        # subtraction (and so the alert) has no value until the breaker has rejected once.
        assert subtracted in _squeezed(expr), expr


def test_the_rejection_series_is_missing_until_a_first_rejection() -> None:
    """Why the error-rate expressions need `or vector(0)`."""
    metrics = Metrics()
    assert "circuit_breaker_rejections_total{" not in metrics.render()[0].decode()
    metrics.breaker_rejections.labels("BGG API").inc()
    assert 'circuit_breaker_rejections_total{breaker="BGG API"} 1.0' in metrics.render()[0].decode()


def test_the_dashboard_shows_the_retries_of_both_upstreams() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = set().union(*(metric_names(expr) for expr in exprs))
    assert {"bgg_fetch_attempts_total", "thumbnail_download_retries_total"} <= names


def test_the_dashboard_shows_the_job_queue(tmp_path: Path) -> None:
    """Jobs by status, the oldest queued age and lease expiries per minute, in one panel, on
    names the collector exports (not on names copied into this test)."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    known = exported_names(tmp_path)
    job_series = {n for n in known if n.startswith("background_job")}
    (panel,) = [p for p in dashboard["panels"] if p["title"].startswith("Background jobs")]
    exprs = [t["expr"] for t in panel["targets"]]
    names = set().union(*(metric_names(expr) for expr in exprs))
    assert names <= job_series
    assert {"background_jobs", "background_job_oldest_queued_seconds"} <= names
    assert "background_job_lease_expiries_total" in names
    (expiries,) = [e for e in exprs if "lease_expiries" in e]
    assert "[1m]" in expiries
