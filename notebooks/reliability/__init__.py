"""The analysis behind the notebooks: loaders, analysis functions and plots, one job a module.

Loaders (each checks its input and raises `errors.InputError` / `MalformedRowError`, naming
the file and the row, for input it cannot use):
`tables` (the service's failure and run tables, aggregated in SQL, one class per question in
`queries`; `db` opens the database read-only from the service's URL forms, `sql` holds the
tables and the SQLite/PostgreSQL differences as SQLAlchemy Core expressions),
`csv_tables` (CSV exports of those tables), `frames` (typing and checking rows),
`sentry_load` (Sentry events in every shape), `chaos` (the chaos harness's reports),
`loadrun` (Locust CSVs and the load summary), `testcount` (JUnit, collect-only).

Analysis: `failures`, `messages`, `errortypes`, `sentry`, `metrics` (the Success Metrics).
Notebook helpers: `sources` (data from parameters), `plots` (matplotlib figures), `show`
(display), `timeutil`, `paths`.

Nothing here imports the service: it reads data.
"""
