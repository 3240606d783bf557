"""Every command a developer or CI runs: `nox -l` lists them, `nox -s NAME -- ARGS` runs one.

`nox -s tests` runs on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.

Every session installs from `constraints.txt`, the lock: exact versions of every package the
project and its extras need, so a fresh clone installs what was tested. `nox -s lock` refreshes
it to the newest allowed versions; `nox -s tests-latest` runs the tests on those versions
without touching the lock, so an upstream release shows up there first.
"""

from __future__ import annotations

import filecmp
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"
# uv builds the session environments in seconds where pip takes minutes; plain virtualenv and
# pip are used when uv is not installed (both honour the constraints file).
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
ROOT = Path(__file__).parent
LOCK = ROOT / "constraints.txt"
#: How the lock is compiled: every extra, for every platform, without index URLs.
COMPILE = (
    "uv", "pip", "compile", "pyproject.toml", "--all-extras", "--universal",
    "--python-version", PYTHON, "--no-emit-index-url",
    "--custom-compile-command", "nox -s lock",
)  # fmt: skip


def _spec(extras: tuple[str, ...]) -> str:
    return f".[{','.join(extras)}]" if extras else "."


def _install(session: nox.Session, *extras: str) -> None:
    """Install the project (editable) with the given extras, at the locked versions."""
    session.install("-c", str(LOCK), "-e", _spec(extras))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite. Set TEST_DATABASE_URL to a PostgreSQL URL to test that backend too."""
    # The harness's own tests (chaos, load, notebooks) run here too: they need its extras.
    _install(session, "test", "chaos", "load", "notebooks")
    # On every core (pytest-xdist): most slow tests wait on the processes they start, and each
    # file stays on one worker, so a module's fixtures (one whole chaos run) are made once.
    # Time bounds are judged by the harness with margins that held at a load average of 4.
    parallel = [] if session.posargs else ["--numprocesses", "auto", "--dist", "loadfile"]
    session.run("pytest", *parallel, *session.posargs)


@nox.session(name="tests-latest", python=PYTHON)
def tests_latest(session: nox.Session) -> None:
    """The test suite on the newest versions pyproject.toml allows (the lock is not used).

    A failure here that `nox -s tests` does not have is an upstream release to act on before
    `nox -s lock` takes it in.
    """
    # uv's --upgrade takes every package to its newest; pip's only those the old ones do not
    # satisfy, unless told to be eager.
    eager = [] if session.venv_backend == "uv" else ["--upgrade-strategy", "eager"]
    session.install("--upgrade", *eager, "-e", _spec(("test", "chaos", "load", "notebooks")))
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Refresh constraints.txt to the newest versions pyproject.toml allows."""
    session.install("-c", str(LOCK), "uv")
    session.run(*COMPILE, "--upgrade", "-o", str(LOCK))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check), mypy (strict), and that the lock matches pyproject.toml."""
    _install(session, "lint", "test", "chaos", "load", "notebooks", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run(
        "mypy", "system", "chaos", "benchmarks", "loadtests", "notebooks", "mutation", "tests"
    )
    # Compiling onto a copy of the lock keeps every pin it can: any change means pyproject.toml
    # asks for something the lock does not hold.
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / LOCK.name
        copy.write_bytes(LOCK.read_bytes())
        session.run(*COMPILE, "--quiet", "-o", str(copy))
        if not filecmp.cmp(copy, LOCK, shallow=False):
            session.error("constraints.txt is out of date with pyproject.toml: run `nox -s lock`")


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The main job: fault-injection scenarios against the real service (`python -m chaos run`).

    ARGS go to `python -m chaos run` (scenarios, --seed, --workers, --service-env KEY=VALUE,
    --target URL, ...). Runs every scenario on SQLite, and the database scenarios on
    PostgreSQL too when TEST_DATABASE_URL is set. Each run writes reports/chaos/<run>/ (its
    report.html is the page to read), and reports/chaos/latest points at the run that finished
    last.

    Exit code: nox ends any failed session with 1, whatever the command's code. The harness's
    own (0 every hypothesis held, 1 one deviated, 2 harness error or bad arguments, 3 data
    lost) is on the run's line naming its folder (just before the line naming report.html),
    on nox's last line, in the run's summary.json (`exit_code`) and at the top of the page.
    """
    from nox.command import CommandFailed

    _install(session, "chaos")
    try:
        session.run("python", "-m", "chaos", "run", *session.posargs)
    except CommandFailed as failed:
        # nox has no way to end with a session's own code (a SystemExit would skip the
        # sessions after this one, e.g. the notebooks of the failed run), so it is said here.
        meaning = {1: "a hypothesis deviated", 2: "harness error or bad arguments",
                   3: "data lost"}.get(failed.return_code or 0, "unexpected")  # fmt: skip
        session.error(f"python -m chaos run exited {failed.return_code} ({meaning})")


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


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Fakes and the service on loopback with 45 real games imported, to browse offline.

    Runs `python -m chaos demo ARGS`: prints the URLs (/, /docs, the catalogue, the admin
    monitoring routes with the admin token, /metrics) and stays up until Ctrl-C;
    `-- --exit-after-import` or `-- --duration SECONDS` bound it.
    """
    _install(session, "chaos")
    session.run("python", "-m", "chaos", "demo", *session.posargs)


@nox.session(python=PYTHON)
def lab(session: nox.Session) -> None:
    """JupyterLab on notebooks/, opening on the latest runs in reports/ (127.0.0.1 only).

    ARGS go to JupyterLab (e.g. `--port 8899`). No browser is opened: open the printed URL.
    Runs as root too (`--allow-root`). The notebooks' data parameters, left at "latest", read
    what `nox -s notebooks`, `nox -s chaos` and `nox -s load` wrote last;
    NOTEBOOKS_REPORTS_DIR names another reports folder. See `notebooks/lab.py`.
    """
    _install(session, "notebooks")
    session.run("python", "-m", "notebooks.lab", *session.posargs)


@nox.session(python=PYTHON)
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the resilience layer, the job queue and the error mapping.

    Runs `python -m mutation ARGS`: mutmut over the files `[tool.mutmut]` in pyproject.toml
    names, with the tests of tests/resilience, tasks, db and api (not `slow`), on SQLite and,
    when TEST_DATABASE_URL / TEST_REDIS_URL are set, PostgreSQL and Redis too. Scores per
    module and the surviving mutants with their diffs go to reports/mutants/ (report.md,
    report.json). mutmut keeps its state in mutants/ (git-ignored): keep it, and a rerun
    re-tests only the functions that changed. ARGS: files, folders or mutant name globs
    (`-- system/resilience/breaker.py`), always re-tested; `--report-only`; `--max-children N`
    (default 1).
    """
    _install(session, "test", "mutants")
    session.run("python", "-m", "mutation", *session.posargs)
