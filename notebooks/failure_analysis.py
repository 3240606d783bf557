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
# # Failure analysis: background task failures and runs
#
# What failed in the background (thumbnail downloads), why, for how long, and whether the
# service met its target of **more than 95 % background task success**. Everything is read
# from the data (the service's database, or CSV exports of its tables) through aggregate
# queries in `notebooks.reliability`, so it works on a million failure rows as on a hundred.
# Outage windows (a circuit breaker not closed, from the harness's `events.jsonl`) are shaded
# on the timelines.
#
# Run headless with `python -m notebooks` (or `nox -s notebooks`); open it with `nox -s lab`
# and change the parameters to dig into an incident (left at "latest", they read the newest
# runs in `reports/`).

# %%
import json

from notebooks import dataset
from notebooks.reliability import chaos, metrics, plots, show, sources
from notebooks.reliability.failures import analyse_failures, duration_summary
from notebooks.reliability.timeutil import describe_seconds

# %% tags=["parameters"]
database_url = "latest"  # DATABASE_URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...
failures_csv = ""  # ... or a CSV export of background_task_failures
runs_csv = ""  # ... and of background_task_runs (optional)
events_path = "latest"  # events.jsonl (chaos harness layout): breaker transitions, shaded
since = ""  # time window, ISO-8601 (UTC when no zone); "" = unbounded
until = ""
now = ""  # the reference time for ages; "" = the time of the run
bucket = "auto"  # time bucket: auto, 30s, 15min, 1h, 1d
target = 0.95  # background task success target
output_dir = "reports/notebooks"  # where failure_summary.json is written

# %%
# "latest": the data set `nox -s notebooks` made last, else the latest chaos run (reports/).
database_url, events_path = dataset.resolve_latest(
    database_url=database_url, events_path=events_path
)
tables = sources.task_tables(
    database_url=database_url,
    failures_csv=failures_csv,
    runs_csv=runs_csv,
    since=since,
    until=until,
    now=now,
)
events = sources.chaos_events(events_path)
windows = chaos.outage_windows(chaos.breaker_transitions(events)) if events is not None else None
analysis = analyse_failures(tables, bucket=bucket, target=target) if tables is not None else None
if analysis is None:
    show.not_available(
        "no failure table was given",
        "Set `database_url` (or `failures_csv`), or run `python -m notebooks` to generate data.",
    )

# %% [markdown]
# ## Verdict
#
# Background task success against the target (tasks whose first run succeeded), and why a
# FAIL fails.

# %%
if analysis is not None:
    context = metrics.Context(
        drill_faults=metrics.drill_faults(events), success=analysis.success_total
    )
    show.show(metrics.task_verdict(analysis.success_total, target=target, context=context))
    waiting = analysis.overview.unresolved
    show.note(
        f"**{waiting:,} unresolved failure{'s' if waiting != 1 else ''}** in this window "
        "(see “Unresolved backlog” below)."
        if waiting
        else "Every failure in this window is resolved."
    )

# %% [markdown]
# ## Overview
#
# The window's failure rows, how many are still unresolved, the runs table's size, and how
# long the whole analysis took (every number below comes from a handful of SQL aggregates).

# %%
if analysis is not None:
    show.show(analysis.overview_table(since=since, until=until))

# %% [markdown]
# ## Failures over time, by task type
#
# Each bar is one time bucket; shaded spans are the outage windows (a breaker open or
# half-open), so failures that cluster inside them are the outage's, and failures outside
# them are worth a closer look.

# %%
if analysis is not None:
    show.show(
        plots.stacked_bars(
            analysis.over_time,
            time="bucket",
            group="task_type",
            value="failures",
            bucket=analysis.bucket,
            title="Failures by task type",
            ylabel="failures",
            windows=windows,
        )
    )

# %% [markdown]
# ## Top error types and messages
#
# Transient errors (timeouts, network errors, 5xx, an open breaker) are retried
# automatically when the breaker closes; permanent ones (missing image, wrong content type,
# refused URL, oversized body) need a person. Messages are grouped after their numbers, ids
# and URLs are taken out; above 200,000 rows the patterns are estimated from a sample
# (`estimated` is then true).

# %%
if analysis is not None:
    show.show(plots.error_types_chart(analysis.error_types))
    show.show(show.percent(analysis.messages.drop(columns=["distinct_messages"]), ["share"]))

# %% [markdown]
# ## Unresolved backlog and its age
#
# What still waits, by task type and error type, with the age of the oldest one. Ages are
# measured against `now`; rows created after `now` are left out (see data quality below).

# %%
if analysis is not None:
    if analysis.backlog.empty:
        show.note("Nothing is unresolved in this window.")
    else:
        show.show(show.times(analysis.backlog, ["oldest"]))
        show.show(
            plots.duration_bins_chart(
                analysis.backlog_ages,
                title="Unresolved failures by age",
                xlabel="age (now - created_at)",
            )
        )
        show.show(duration_summary(analysis.backlog_age_quantiles, what="age"))

# %% [markdown]
# ## Time to resolution
#
# `resolved_at - created_at` of the resolved failures: automatic retries after an outage
# resolve within seconds of the breaker closing, an operator's resolution takes longer. The
# curve is the share of failures resolved within a given time (log scale).

# %%
if analysis is not None:
    show.show(
        plots.quantile_chart(
            analysis.resolution_quantiles,
            title="Time to resolution",
            xlabel="time to resolution, resolved_at - created_at (log scale)",
        )
    )
    show.show(
        plots.duration_bins_chart(
            analysis.resolution_bins,
            title="Time to resolution, binned",
            xlabel="time to resolution (resolved_at - created_at)",
        )
    )
    show.show(duration_summary(analysis.resolution_quantiles, what="time to resolution"))

# %% [markdown]
# ## Retry counts
#
# `retry_count` is the number of attempts made: 3 is the policy's full set of attempts; 1
# means the error was not worth retrying (permanent) or the breaker rejected it outright;
# more than 3 comes from later retries of the same failure.

# %%
if analysis is not None:
    show.show(plots.retries_chart(analysis.retries))

# %% [markdown]
# ## Games that fail most

# %%
if analysis is not None:
    show.show(plots.games_chart(analysis.games))
    show.show(show.times(analysis.games, ["last_failure"]))

# %% [markdown]
# ## Background task success against the 95 % target
#
# From the runs table: each bucket's share of tasks whose **first run** succeeded (its own
# three attempts included). "Eventually" also counts a task whose first run failed and a
# later automatic or manual retry succeeded.

# %%
if analysis is not None:
    if analysis.overview.runs is None:
        show.not_available("no background_task_runs table", "Export it too (`runs_csv`).")
    else:
        show.show(
            plots.success_rate_chart(
                analysis.success, target=target, bucket=analysis.bucket, windows=windows
            )
        )
        show.show(analysis.success_total.table())

# %% [markdown]
# ## Outage windows
#
# From the breakers' transitions in `events_path` (the service's own timestamps): when each
# breaker opened and when it closed again.

# %%
if windows is None:
    show.not_available(
        "no events.jsonl", "Set `events_path` to a chaos run's or the generator's events."
    )
elif windows.empty:
    show.note("No breaker opened in these events.")
else:
    shown = show.durations(show.times(windows, ["start", "end"]), ["duration_s"])
    # A breaker still open when the data ends has no end and no duration yet.
    still_open = windows["open_ended"].astype(bool).to_numpy()
    shown.loc[still_open, "end"] = "still open when the data ends"
    shown.loc[still_open, "duration_s"] = ""
    show.show(shown.drop(columns=["open_ended"]).rename(columns={"duration_s": "duration"}))

# %% [markdown]
# ## The newest unresolved failures
#
# The only place rows are read (at most 20, newest first): where to start digging.

# %%
if tables is not None:
    newest = tables.read_failures(unresolved_only=True, limit=20)
    columns = [
        "id",
        "created_at",
        "task_type",
        "game_id",
        "error_type",
        "retry_count",
        "error_message",
    ]
    show.show(show.times(newest[columns], ["created_at"]))

# %% [markdown]
# ## Data quality
#
# Valid rows that are odd: each is counted, and said how the analysis treats it.

# %%
if analysis is not None:
    show.show(analysis.quality)

# %%
if analysis is not None:
    folder = sources.output_folder(output_dir)
    (folder / "failure_summary.json").write_text(json.dumps(analysis.summary(), indent=2))
    show.note(
        f"Summary written to `{folder / 'failure_summary.json'}`; the analysis took "
        f"{describe_seconds(analysis.seconds)}."
    )
