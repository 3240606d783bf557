"""`python -m notebooks.lab [ARGS]` (what `nox -s lab` runs): JupyterLab on `notebooks/`,
wired so the notebooks open on the newest runs.

- It listens on 127.0.0.1 only, and opens no browser: it prints the URL, token included.
- As root (a container, CI) it passes `--allow-root`, which JupyterLab otherwise wants.
- Its kernels import this checkout (`PYTHONPATH`) and read `NOTEBOOKS_REPORTS_DIR` (the
  repository's `reports/` unless set), so a notebook whose data parameters are left at
  "latest" shows the data set `nox -s notebooks` made last, the chaos run that finished last
  (`reports/chaos/latest/`) and the load run (`reports/load/`).
- It never asks the internet for a newer JupyterLab or for extensions.

ARGS go to JupyterLab (`--port 8899`, `--ServerApp.token=...`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from notebooks.dataset import REPORTS_ENV, default_reports
from notebooks.reliability.paths import REPO

#: The folder JupyterLab opens: the notebooks.
SOURCE_DIR = REPO / "notebooks"

#: The only address the server listens on.
LOOPBACK = "127.0.0.1"


def command(args: Sequence[str] = (), *, root: bool | None = None) -> list[str]:
    """The JupyterLab command line (`root`: whether we run as root; default: ask the OS)."""
    as_root = os.geteuid() == 0 if root is None else root
    line = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={SOURCE_DIR}",
        f"--ServerApp.ip={LOOPBACK}",
        "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if as_root:
        line.append("--allow-root")
    return line + list(args)


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) plus what the kernels need to find this
    checkout's code and its reports."""
    env = dict(os.environ if base is None else base)
    paths = [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[REPORTS_ENV] = env.get(REPORTS_ENV) or str(default_reports())
    return env


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Become JupyterLab (exec: Ctrl-C and signals reach the server itself)."""
    line = command(sys.argv[1:] if argv is None else argv)
    env = environment()
    print(f"JupyterLab on {SOURCE_DIR}, reports from {env[REPORTS_ENV]} (Ctrl-C to stop)")
    sys.stdout.flush()
    os.execve(line[0], line, env)  # noqa: S606 (our own interpreter, arguments as a list)


if __name__ == "__main__":
    main()
