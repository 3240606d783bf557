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
# # Sentry analysis: error events, issues, releases and spikes
#
# The error events the service reported, from any export Sentry (or the service) writes: the
# service's JSON-lines export (`SENTRY_EXPORT_PATH`), JSON from Sentry's events API (one
# event or a list), or a Discover CSV export; tags in any of Sentry's three shapes. See
# `notebooks/reliability/sentry_load.py` for what each format must hold.
#
# The service tags every event with `user_type` (admin/public), `endpoint_type` (api/static)
# and `bgg_breaker` (the BGG breaker's state), and gives every "BGG unavailable" event the
# fingerprint `bgg-unavailable`, so an outage is one issue.

# %% [markdown]
# ## Overview
#
# What the export holds: how many events and issues, which releases and environments, and
# when the first and the last event happened.

# %%
import json

from notebooks import dataset
from notebooks.reliability import plots, sentry, show, sources

# %% tags=["parameters"]
sentry_paths: list[str] = ["latest"]  # Sentry exports (.jsonl, .json, Discover .csv), or folders
since = ""  # time window, ISO-8601 (UTC when no zone); "" = unbounded
until = ""
bucket = "auto"  # time bucket: auto, 30s, 15min, 1h, 1d
tags = ["endpoint_type", "user_type", "bgg_breaker"]  # tags to break the events down by
release = ""  # compare before/after this release (a GIT_COMMIT_SHA); "" = the newest one
spike_window = 12  # buckets of history behind each rolling z-score
spike_threshold = 3.0  # z-score at which a bucket is a spike
spike_min_events = 3  # ... and at least this many events
output_dir = "reports/notebooks"  # where sentry_top_issues.csv and sentry_summary.json go

# %%
# ["latest"]: the Sentry export of the data set `nox -s notebooks` made last (reports/).
(sentry_paths,) = dataset.resolve_latest(sentry_paths=sentry_paths)
loaded = sources.sentry_events(sentry_paths)
events = sentry.between(loaded, since, until) if loaded is not None else None
width = sentry.auto_bucket(events, bucket) if events is not None else 60
if events is None:
    show.not_available(
        "no Sentry export was given",
        "Set `sentry_paths`, or run `python -m notebooks` to generate one from the service.",
    )
elif events.empty:
    show.note("The export holds no event in this window.")
else:
    show.show(sentry.sentry_overview(events))

# %% [markdown]
# ## Events over time
#
# All events per time bucket by exception type, then by each tag in `tags`; an event
# without the tag counts as "(not set)".

# %%
if events is not None and not events.empty:
    by_type = sentry.events_over_time(events, width, by="exception_type")
    show.show(
        plots.stacked_bars(
            by_type,
            time="bucket",
            group="exception_type",
            value="events",
            bucket=width,
            title="Sentry events by exception type",
            ylabel="events",
        )
    )
    for key in tags:
        over_time = sentry.events_over_time(events, width, by=key)
        show.show(
            plots.stacked_bars(
                over_time,
                time="bucket",
                group=key,
                value="events",
                bucket=width,
                title=f"Sentry events by {key}",
                ylabel="events",
            )
        )
        show.show(show.percent(sentry.tag_breakdown(events, key), ["share"]))

# %% [markdown]
# ## Top issues
#
# Events grouped into issues by Sentry's group id when the export has one, else by a custom
# fingerprint (`bgg-unavailable`), else by exception type and title with the numbers and ids
# taken out.

# %%
if events is not None and not events.empty:
    top = sentry.top_issues(events, limit=10)
    show.show(
        plots.hbar(list(top["title"]), list(top["events"]), title="Top issues", xlabel="events")
    )
    show.show(show.times(show.percent(top, ["share"]), ["first_seen", "last_seen"]))

# %% [markdown]
# ## Releases
#
# Each release's events, issues, issues it introduced, how long its events span, and events
# per hour while it ran (only over 15 minutes or more: a rate from a few seconds would be a
# guess, so it shows "—"); then the events before and after the first event of `release`
# (the newest release unless set), which is how to check a deployment (`GIT_COMMIT_SHA`)
# made things better or worse.

# %%
if events is not None and not events.empty:
    releases = sentry.release_comparison(events)
    show.show(
        plots.grouped_bars(
            releases,
            category="release",
            values=["events", "issues", "new_issues"],
            title="Events and issues per release",
            ylabel="count",
        )
    )
    show.show(show.durations(show.times(releases, ["first_seen", "last_seen"]), ["span_s"]))
    chosen = release or sentry.latest_release(events)
    if chosen:
        show.note(f"Before and after release `{chosen}`:")
        show.show(show.durations(sentry.before_after(events, chosen), ["span_s"]))
    else:
        show.note("No event carries a release: nothing to compare.")

# %% [markdown]
# ## Spikes
#
# A bucket is a spike when its count is `spike_threshold` standard deviations above the mean
# of the `spike_window` buckets before it (the deviation floored at max(1, sqrt(mean)), so a
# single event in a quiet series is no spike), with at least `spike_min_events` events. Each
# spike is named by the issue with the most events in it.

# %%
if events is not None and not events.empty:
    found = sentry.spikes(
        events,
        width,
        window=spike_window,
        threshold=spike_threshold,
        min_events=spike_min_events,
    )
    show.show(plots.spikes_chart(found, bucket=width, threshold=spike_threshold))
    hits = found[found["spike"]]
    if hits.empty:
        show.note("No spike in this window.")
    else:
        show.show(show.times(hits, ["bucket"]))

# %% [markdown]
# ## BGG-related share
#
# Events whose title, message, exception type or fingerprint mention BGG
# (`BggTransientError`, `bgg-unavailable`, `.../xmlapi2/...`): the share of the error budget
# the upstream costs, and when.

# %%
if events is not None and not events.empty:
    share = sentry.bgg_share(events)
    show.show(plots.pie_share(share, label="category", value="events", title="BGG-related events"))
    show.show(
        plots.stacked_bars(
            sentry.bgg_over_time(events, width),
            time="bucket",
            group="category",
            value="events",
            bucket=width,
            title="BGG-related events over time",
            ylabel="events",
        )
    )

# %%
if events is not None:
    folder = sources.output_folder(output_dir)
    sentry.top_issues(events, limit=50).to_csv(folder / "sentry_top_issues.csv", index=False)
    summary = {
        "events": len(events),
        "issues": int(events["issue"].nunique()),
        "bgg_related_share": float(sentry.bgg_share(events)["share"].iloc[0])
        if len(events)
        else None,
        "bucket_s": width,
    }
    (folder / "sentry_summary.json").write_text(json.dumps(summary, indent=2))
    show.note(f"Top issues written to `{folder / 'sentry_top_issues.csv'}`.")
