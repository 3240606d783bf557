"""Every command a developer or CI runs: `nox -l` lists them, `nox -s NAME -- ARGS` runs one.

`nox -s tests` runs on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"
# uv builds the session environments in seconds where pip takes minutes; plain virtualenv and
# pip are used when uv is not installed.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


def _install(session: nox.Session, *extras: str) -> None:
    """Install the project (editable) with the given optional dependency groups."""
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite. Set TEST_DATABASE_URL to a PostgreSQL URL to test that backend too."""
    # The harness's own tests (chaos, load, notebooks) run here too: they need its extras.
    _install(session, "test", "chaos", "load", "notebooks")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy (strict on the service and the harness)."""
    _install(session, "lint", "test", "chaos", "load", "notebooks")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "system", "chaos", "benchmarks", "loadtests", "notebooks")


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The main job: fault-injection scenarios against the real service (`python -m chaos run`).

    ARGS go to `python -m chaos run` (scenarios, --seed, --workers, --service-env KEY=VALUE,
    --target URL, ...). Runs every scenario on SQLite, and the database scenarios on
    PostgreSQL too when TEST_DATABASE_URL is set.
    """
    _install(session, "chaos")
    session.run("python", "-m", "chaos", "run", *session.posargs)


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """A bounded headless Locust run with pass/fail thresholds (`python -m loadtests`)."""
    _install(session, "load")
    session.run("python", "-m", "loadtests", *session.posargs)


@nox.session(python=PYTHON)
def notebooks(session: nox.Session) -> None:
    """Execute the notebook reports headless into reports/notebooks/ (`python -m notebooks`)."""
    _install(session, "notebooks")
    session.run("python", "-m", "notebooks", *session.posargs)
