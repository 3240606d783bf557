"""Notebook reports: the failure table, Sentry exports, and the measured success metrics.

- `notebooks.reliability`: the analysis the notebooks call (loaders, analysis, plots); it reads
  data (databases, exports, reports) and never imports the service.
- `notebooks.generate`: a data set made by driving the real service (`python -m system serve`)
  against the fake BGG and image CDN of `chaos.fakes`.
- `notebooks.execute`: runs the notebooks headless (nbclient) and writes `.ipynb` and `.html`.
- `python -m notebooks`: the command line (`notebooks.cli`); `python -m notebooks.bench`: the
  scale benchmark on PostgreSQL.

The notebooks themselves are `failure_analysis`, `sentry_analysis` and `reliability_report`,
each a `py:percent` file paired with an `.ipynb` (outputs stripped) by jupytext.
"""
