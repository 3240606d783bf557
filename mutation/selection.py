"""Which mutants a run covers: source files or folders become mutmut's name globs."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path


class BadTarget(ValueError):
    """A target that names no file mutmut mutates."""


def mutated_patterns(pyproject: Path) -> list[str]:
    """The `only_mutate` globs of `[tool.mutmut]`: the files that get mutants."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    patterns: list[str] = data["tool"]["mutmut"]["only_mutate"]
    return patterns


def mutant_globs(targets: list[str], patterns: list[str], root: Path) -> list[str]:
    """mutmut name globs for `targets` (files, folders, or names and globs passed through).

    `system/resilience/breaker.py` -> `system.resilience.breaker.*`,
    `system/resilience/` -> `system.resilience.*`; anything without a `/` or `.py` is taken
    for a mutant name or glob as `mutmut run` reads it.
    """
    globs = []
    for target in targets:
        if "/" not in target and not target.endswith(".py"):
            globs.append(target)
            continue
        path = Path(target)
        found = (root / path).rglob("*.py") if (root / path).is_dir() else [root / path]
        files = [f.relative_to(root).as_posix() for f in found if f.exists()]
        if not any(fnmatch.fnmatch(f, p) for f in files for p in patterns):
            raise BadTarget(
                f"{target}: not a file that gets mutants (pyproject.toml "
                f"[tool.mutmut] only_mutate: {', '.join(patterns)})"
            )
        module = (
            ".".join(path.with_suffix("").parts) if path.suffix == ".py" else ".".join(path.parts)
        )
        globs.append(f"{module}.*")
    return globs
