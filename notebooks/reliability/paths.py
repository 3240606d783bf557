"""Where relative paths point: the current folder, else the repository's root; and which run
a folder of chaos runs stands for.

`jupyter lab notebooks/` starts kernels in `notebooks/`, the command line runs them in the
repository's root; a parameter such as `reports/chaos/latest/summary.json` or the service's
default `sqlite+aiosqlite:///var/bgg.db` means the same file either way.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def locate(path: str | Path) -> Path:
    """`path` as given when it exists (or is absolute), else relative to the repository."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    return REPO / given


#: The link `python -m chaos run` points at its newest finished run, in the folder of runs.
LATEST = "latest"


def run_folder(folder: Path) -> Path:
    """The run a chaos report folder stands for: its `latest` when it is a folder of runs
    (`--report-dir` of `python -m chaos run`, `reports/chaos`), else the folder itself (one
    run's folder, or the single folder of versions before runs had their own)."""
    latest = folder / LATEST
    return latest if latest.is_dir() else folder
