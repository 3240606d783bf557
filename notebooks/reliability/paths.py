"""Where relative paths point: the current folder, else the repository's root.

`jupyter lab notebooks/` starts kernels in `notebooks/`, the command line runs them in the
repository's root; a parameter such as `reports/chaos/summary.json` or the service's default
`sqlite+aiosqlite:///var/bgg.db` means the same file either way.
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
