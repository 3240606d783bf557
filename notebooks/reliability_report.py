# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reliability report: the spec's Success Metrics, measured
#
# The spec's Success Metrics table with measured values: each metric against its target,
# pass or FAIL, and why a FAIL fails. The sections below show the data behind every number.

# %%
import json

from notebooks import dataset
from notebooks.reliability import chaos, loadrun, metrics, plots, show, sources
from notebooks.reliability.failures import success_by_bucket, success_summary
from notebooks.reliability.sentry import NOT_SET
from notebooks.reliability.timeutil import bucket_seconds

# %% tags=["parameters"]
# "latest" reads the newest runs in reports/: the data set `nox -s notebooks` made last, the
# chaos run that finished last (reports/chaos/latest/), the load run (reports/load/).
database_url = "latest"  # the service's DATABASE_URL (for the runs table)
failures_csv = ""  # ... or CSV exports of the tables
runs_csv = ""
events_path = "latest"  # events.jsonl of the data set (breaker transitions, faults, alerts)
chaos_summary = "latest"  # reports/chaos/latest/summary.json
chaos_journal = "latest"  # reports/chaos/latest/journal.json (or a folder of journal-*.json)
chaos_events = "latest"  # reports/chaos/latest/events.jsonl
load_dir = "latest"  # reports/load (Locust CSVs and summary.json)
tests_path = "latest"  # JUnit XML, tests.json, or saved `pytest --collect-only -q` output
since = ""  # time window for the runs table, ISO-8601; "" = unbounded
until = ""
bucket = "auto"
target_error_rate = 0.01  # < 1 %
target_task_success = 0.95  # > 95 %
target_mttd_s = 300.0  # < 5 minutes
target_breaker_p99_ms = 50.0  # < 50 ms
output_dir = "reports/notebooks"  # where success_metrics.json and .csv are written

# %%
(
    database_url,
    events_path,
    chaos_summary,
    chaos_journal,
    chaos_events,
    load_dir,
    tests_path,
) = dataset.resolve_latest(
    database_url=database_url,
    events_path=events_path,
    chaos_summary=chaos_summary,
    chaos_journal=chaos_journal,
    chaos_events=chaos_events,
    load_dir=load_dir,
    tests_path=tests_path,
)
targets = metrics.Targets(
    error_rate=target_error_rate,
    task_success=target_task_success,
    mttd_s=target_mttd_s,
    breaker_p99_ms=target_breaker_p99_ms,
)
tables = sources.task_tables(
    database_url=database_url,
    failures_csv=failures_csv,
    runs_csv=runs_csv,
    since=since,
    until=until,
)
run_totals = tables.run_totals() if tables is not None else None
success = (
    success_summary(run_totals, target=target_task_success) if run_totals is not None else None
)
summary = sources.chaos_summary(chaos_summary)
journal = sources.chaos_journal(chaos_journal)
harness_events = sources.chaos_events(chaos_events)
data_events = sources.chaos_events(events_path) if events_path != chaos_events else None
timeline_events = data_events if data_events is not None else harness_events
detection = chaos.detection_times(timeline_events) if timeline_events is not None else None
journal_detection = chaos.journal_detection(journal[1]) if journal is not None else None
load = sources.load_results(load_dir)
tests = sources.test_count(tests_path)
table = metrics.success_metrics(
    load=load,
    success=success,
    chaos_summary=summary,
    detection=detection,
    journal_detection=journal_detection,
    tests=tests,
    targets=targets,
)

# %% [markdown]
# ## Verdict

# %%
context = metrics.Context(
    drill_faults=metrics.drill_faults(timeline_events), success=success, tests=tests
)
show.show(metrics.display_table(table, context))
if context.drill_faults:
    show.note(
        "**This is an outage drill.** The data set was made by `python -m notebooks`, which "
        "drives the real service through planned outages ("
        + ", ".join(context.drill_faults)
        + "): background tasks are meant to fail while a fault is on, so the task success "
        "FAIL shows what an outage costs, not a bug. Measure production, or a quiet run, "
        "to judge the target itself."
    )

# %% [markdown]
# ## Where each number comes from
#
# - **error rate** and **circuit breaker response p99**: the Locust load run (`nox -s load`,
#   `reports/load/`);
# - **background task success**: the service's `background_task_runs` table (tasks whose
#   first run succeeded);
# - **MTTD** (fault start to breaker open, and to the alert): the chaos run (`nox -s chaos`,
#   `reports/chaos/latest/`: its summary, else its events), or the events of the generated
#   data set, else a Chaos Toolkit journal alone (first method action to the first probe that
#   saw the breaker open: exact with the service's `opened_at` in its output, else an upper
#   bound);
# - **tests**: a JUnit report, or the test collection made while generating the data.
#
# A metric whose source is missing says "not available" and how to measure it.

# %% [markdown]
# ## Error rate (load run)
#
# Failed requests over all requests in the Locust run, with the BGG outage phase shaded:
# imports rejected by the open breaker (503 + `Retry-After`) are the designed answer and count
# as successes; 502/504 and timeouts count as failures.

# %%
if load is None:
    show.not_available("no load run", "Run `nox -s load` (it writes reports/load/), then rerun.")
else:
    if load.history is not None:
        show.show(plots.load_history_chart(load.history, load.phases()))
    show.show(load.thresholds())
    if load.failures is not None and len(load.failures):
        show.show(load.failures)
    for line in load.notes:
        show.note(line)

# %% [markdown]
# ## Background task success (runs table)
#
# The share of background tasks whose first run succeeded, per time bucket, against the
# target; outage windows from the data set's events are shaded.

# %%
if tables is None or run_totals is None or success is None:
    show.not_available("no runs table", "Set `database_url` (or the CSV exports).")
else:
    overview = tables.overview()
    width = bucket_seconds(bucket, start=overview.span[0], end=overview.span[1])
    windows = (
        chaos.outage_windows(chaos.breaker_transitions(data_events))
        if data_events is not None
        else None
    )
    show.show(
        plots.success_rate_chart(
            success_by_bucket(tables.run_outcomes(width), target=target_task_success),
            target=target_task_success,
            bucket=width,
            windows=windows,
        )
    )
    show.show(success.table())

# %% [markdown]
# ## Time to detection
#
# From a fault switched on to the breaker opening (and to the alert firing). The chaos
# summary measures it per scenario; the events give it per fault, for the data set too; a
# journal alone gives it per experiment, from the first method action to the first probe
# whose output saw the breaker open (`opened_at`: exact; `probe end`: an upper bound) or the
# alert.

# %%
if summary is None and detection is None and journal_detection is None:
    show.not_available("no chaos run", "Run `nox -s chaos` (it writes reports/chaos/latest/).")
if summary is not None and "mttd_open_s" in summary.columns:
    measured = summary.dropna(subset=["mttd_open_s"])
    show.show(
        plots.target_bars(
            list(measured["scenario"]),
            list(measured["mttd_open_s"]),
            target=target_mttd_s,
            title="Chaos scenarios: fault to breaker open",
            unit="s",
        )
    )
    columns = [c for c in ("scenario", "verdict", "mttd_open_s", "mttd_alert_s") if c in summary]
    show.show(summary[columns])
if detection is not None:
    show.show(
        show.times(show.durations(detection, ["mttd_open_s", "mttd_alert_s"]), ["fault_start"])
    )
if journal_detection is not None and journal_detection["mttd_open_s"].notna().any():
    if summary is None or "mttd_open_s" not in summary.columns:
        seen = journal_detection.dropna(subset=["mttd_open_s"])
        show.show(
            plots.target_bars(
                list(seen["scenario"]),
                list(seen["mttd_open_s"]),
                target=target_mttd_s,
                title="Chaos journal: first method action to a probe seeing the breaker open",
                unit="s",
            )
        )
    show.show(show.durations(journal_detection, ["mttd_open_s", "mttd_alert_s"]))
if timeline_events is not None:
    show.show(
        plots.timeline_chart(
            chaos.fault_windows(timeline_events),
            chaos.outage_windows(chaos.breaker_transitions(timeline_events)),
            title="Faults and breaker outages",
        )
    )

# %% [markdown]
# ## Circuit breaker response (load run)
#
# The p99 of imports rejected by the open breaker against the target, next to `GET /health`
# (the cheapest route) measured in the same run; the chaos run's rejection p99s (measured
# without load) for comparison.

# %%
if load is not None:
    figures = loadrun.figures(load)
    show.show(
        plots.target_bars(
            ["import (breaker open) p99", "GET /health p99"],
            [figures["breaker_rejection_p99_ms"], figures["health_p99_ms"]],
            target=target_breaker_p99_ms,
            title="Open-breaker rejection under load",
            unit="ms",
        )
    )
if summary is not None and "rejection_p99_ms" in summary.columns:
    measured = summary.dropna(subset=["rejection_p99_ms"])
    show.show(
        plots.target_bars(
            list(measured["scenario"]),
            list(measured["rejection_p99_ms"]),
            target=target_breaker_p99_ms,
            title="Chaos scenarios: rejection p99 (no load)",
            unit="ms",
        )
    )
if load is None and summary is None:
    show.not_available("no load or chaos run", "Run `nox -s load` and `nox -s chaos`.")

# %% [markdown]
# ## Tests

# %%
if tests is None:
    show.not_available("no test report", "Pass a JUnit XML (`pytest --junitxml=...`).")
else:
    show.show(
        plots.hbar(
            list(tests.areas()["area"]),
            list(tests.areas()["tests"]),
            title=f"Tests by area ({tests.collected:,}, from {tests.source})",
            xlabel="tests",
        )
    )

# %% [markdown]
# ## Chaos hypotheses
#
# Each scenario's verdict and how many of its hypotheses held; the journal's activities
# (Chaos Toolkit layout) per scenario and status.

# %%
if summary is None:
    show.not_available("no chaos summary", "Run `nox -s chaos`.")
else:
    columns = [
        c for c in ("scenario", "backend", "verdict", "held", "total", "reason") if c in summary
    ]
    show.show(summary[columns])
if journal is not None:
    experiments, activities = journal
    counts = activities.groupby(["scenario", "phase", "status"], dropna=False).size()
    show.show(counts.rename("activities").reset_index().fillna(NOT_SET))

# %%
folder = sources.output_folder(output_dir)
table.to_csv(folder / "success_metrics.csv", index=False)
(folder / "success_metrics.json").write_text(json.dumps(metrics.to_records(table), indent=2))
show.note(f"Success metrics written to `{folder / 'success_metrics.json'}`.")
