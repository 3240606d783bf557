"""Locust load runs that pass or fail on the service-level targets.

Two ways in:

- `python -m loadtests [OPTIONS]` (what `nox -s load -- OPTIONS` runs): starts the fake BGG and
  image CDN and the service on loopback, runs Locust headless with a load shape, checks the
  thresholds and writes `reports/load/` (`report.html` for people, Locust's CSVs and its own
  report, `summary.json`). Exit 0 when every threshold held, 1 on a breach, 2 on bad options
  or a target that cannot be used. `python -m loadtests report DIR` writes the page again.
- `locust -f loadtests/locustfile.py --host URL`: plain Locust against any deployment, web UI
  included, with the admin token in `LOADTEST_ADMIN_TOKEN`.

Layout: `locustfile` (the entry point), `users` (one class per audience), `shapes` (the load
shape), `hooks` (options, preflight, the threshold check) import `locust`, which
monkey-patches the standard library with gevent. Everything else is plain Python that the
command line and the unit tests use without Locust: `settings` (every option), `names` (the
statistics entries), `outcomes` (what an import answer counts as), `plans` (the shapes'
phases), `windows` (figures between two snapshots of the statistics), `thresholds`, `knee`,
`summary` (`summary.json`), `history` (Locust's history CSV as series), `charts` (figures
as SVG), `page` (`report.html`, its template in `templates/`), `preflight`,
`stack` (fakes, Redis, the service), `arguments` and `runinfo` (the command line and what the
report says about the run) and `cli`.
"""
